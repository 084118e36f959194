package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// With spuff-app not running, a command says only that, once, whatever
// hint it adds to the broker's own refusals.
func TestNotRunningIsToldAlone(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "spuff.sock")
	for _, args := range [][]string{{"approve", "x"}, {"deny", "x"}, {"approvals", "revoke", "x"}, {"down", "x"}} {
		var out, errb bytes.Buffer
		if code := Main(append([]string{"--socket", sock}, args...), &out, &errb); code == 0 {
			t.Errorf("spuff %v succeeded with no spuff-app", args)
		}
		said := errb.String()
		if !strings.HasPrefix(said, "spuff: spuff is not running") || strings.Contains(said, "(see") || strings.Count(said, "\n") != 1 {
			t.Errorf("spuff %v said %q", args, said)
		}
	}
}
