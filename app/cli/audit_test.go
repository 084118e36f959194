package cli

import (
	"regexp"
	"testing"

	"github.com/spuff-dev/spuff/app/approval"
	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/provisioning"
)

// TestAuditHelpNamesWhatALineCanSay: `spuff audit --help` names every
// namespace, result and approval a line can carry, so that a filter can
// be written from it; a value added later without a word here fails.
func TestAuditHelpNamesWhatALineCanSay(t *testing.T) {
	long := auditCmd(&globals{}).Long
	for _, v := range []string{
		bus.NSSSHAgent, bus.NSAWS, bus.NSDocker, bus.NSAgent, provisioning.AuditNS, audit.NSAudit,
		audit.ResultOK, audit.ResultDenied, audit.ResultError,
		approval.MethodNone, approval.MethodCached, approval.MethodTouchID, approval.MethodTray, approval.MethodCLI,
	} {
		if !regexp.MustCompile(`(^|[ \n(])` + regexp.QuoteMeta(v) + `([ \n,;.)]|$)`).MatchString(long) {
			t.Errorf("spuff audit --help does not name %q", v)
		}
	}
}
