package broker

import (
	"fmt"

	"github.com/spuff-dev/spuff/guest/bus"
)

// maxOp bounds an operation name; every op spuff knows is far shorter.
const maxOp = 32

// checkNames refuses a request whose ns is not one of the bus's namespaces
// or whose op is not a short name, before anything else reads them.
func checkNames(r *bus.Request) error {
	if !bus.IsNamespace(r.NS) && r.NS != bus.NSAgent {
		return bus.Errorf(bus.CodeBadRequest, "unknown namespace %s", printable(r.NS))
	}
	if !isName(r.Op, maxOp) {
		return bus.Errorf(bus.CodeBadRequest, "%s: unknown operation %s", r.NS, printable(r.Op))
	}
	return nil
}

// isName reports whether s is a short name of lowercase letters, digits,
// '-', '_', '.' and '@' (extension names such as session-bind@openssh.com).
func isName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '@') {
			return false
		}
	}
	return true
}

// printable returns s if it is a short name, else a quoted, cut form of it
// (at most about 40 characters before escaping) that is safe to log, audit
// and show.
func printable(s string) string {
	if isName(s, 64) {
		return s
	}
	return fmt.Sprintf("%+.40q", s)
}
