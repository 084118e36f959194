package test

import (
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/test/harness"
)

// TestAWrongShedNameIsToldOnce: each command given a shed spuff never
// made, a name no shed can have, an approval id that names nothing, or
// an audit filter no line can pass, fails with one plain sentence that says what to do: one "spuff:"
// before it, no layer's prefix said twice, and the command that shows
// what there is (or the rule for a name, in the same words everywhere).
func TestAWrongShedNameIsToldOnce(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"down", "nosuch"}, "spuff list"},
		{[]string{"stop", "nosuch"}, "spuff list"},
		{[]string{"start", "nosuch"}, "spuff list"},
		{[]string{"ssh", "nosuch"}, "spuff list"},
		{[]string{"ssh-config", "nosuch"}, "spuff list"},
		{[]string{"up", "Bad_Name"}, `"Bad_Name" is not a shed name: use lowercase letters, digits and dashes (at most 63`},
		{[]string{"attach", "Bad_Name", "unix:/nonexistent/bus.sock"}, `"Bad_Name" is not a shed name: use lowercase letters, digits and dashes (at most 63`},
		{[]string{"approve", "nosuch"}, "spuff pending"},
		{[]string{"approvals", "revoke", "nosuch"}, "spuff approvals"},
		{[]string{"audit", "--result", "failed"}, "ok, denied or error"},
		{[]string{"audit", "--shed", "Bad_Name"}, `"Bad_Name" is not a shed name: use lowercase letters, digits and dashes (at most 63`},
	} {
		_, err := h.Spuff(t, tc.args...)
		if err == nil {
			t.Errorf("spuff %s succeeded", strings.Join(tc.args, " "))
			continue
		}
		// The harness's error ends with what spuff wrote on stderr.
		_, said, _ := strings.Cut(err.Error(), "exit status 1: ")
		if !strings.HasPrefix(said, "spuff: ") || !strings.Contains(said, tc.want) {
			t.Errorf("spuff %s said %q, want a message naming %q", strings.Join(tc.args, " "), said, tc.want)
		}
		for _, prefix := range []string{"spuff:", "state:", "provisioning:", "host:", "broker:", "control:"} {
			if strings.Count(said, prefix) > 1 {
				t.Errorf("spuff %s said %q: %q more than once", strings.Join(tc.args, " "), said, prefix)
			}
		}
	}
}
