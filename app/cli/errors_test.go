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

// A command given the wrong number of arguments, a flag it does not have
// or a subcommand there is not says how it is used and where the help is,
// on one line, before it dials spuff-app.
func TestWrongArgumentsGiveTheUsage(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "spuff.sock")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"down"}, "usage: spuff down NAME [flags] (`spuff down --help` says more)"},
		{[]string{"down", "a", "b"}, "usage: spuff down NAME [flags] (`spuff down --help` says more)"},
		{[]string{"start"}, "usage: spuff start NAME [flags] (`spuff start --help` says more)"},
		{[]string{"ssh"}, "usage: spuff ssh NAME [-- CMD...] [flags] (`spuff ssh --help` says more)"},
		{[]string{"attach", "web"}, "usage: spuff attach NAME URL [flags] (`spuff attach --help` says more)"},
		{[]string{"up", "a", "b"}, "usage: spuff up [NAME] [flags] (`spuff up --help` says more)"},
		{[]string{"status", "extra"}, `spuff: unexpected argument "extra": ` + "`spuff status` takes none; usage: spuff status [flags] (`spuff status --help` says more)"},
		{[]string{"approvals", "revoke"}, "usage: spuff approvals revoke ID [flags] (`spuff approvals revoke --help` says more)"},
		{[]string{"down", "--forse", "x"}, "unknown flag: --forse; `spuff down --help` lists the flags"},
		{[]string{"dwn"}, `unknown command "dwn" for "spuff"; did you mean deny or down?; ` + "`spuff --help` lists the commands"},
		{[]string{"dwn", "web", "--force"}, `unknown command "dwn" for "spuff"; did you mean deny or down?; ` + "`spuff --help` lists the commands"},
		{[]string{"stauts", "--json"}, `unknown command "stauts" for "spuff"; did you mean start or status?; ` + "`spuff --help` lists the commands"},
		{[]string{"bogus"}, `unknown command "bogus" for "spuff"; ` + "`spuff --help` lists the commands"},
		{[]string{"approvals", "revok"}, `unknown command "revok" for "spuff approvals"; did you mean revoke?; ` + "`spuff approvals --help` lists the commands"},
		{[]string{"approvals", "revok", "--force"}, `unknown command "revok" for "spuff approvals"; did you mean revoke?; ` + "`spuff approvals --help` lists the commands"},
		{[]string{"approvals", "revok", "1", "--bogus=x"}, `unknown command "revok" for "spuff approvals"; did you mean revoke?; ` + "`spuff approvals --help` lists the commands"},
		{[]string{"approvals", "--bogus"}, "unknown flag: --bogus; `spuff approvals --help` lists the flags"},
		{[]string{"approvals", "--bogus=revok"}, "unknown flag: --bogus; `spuff approvals --help` lists the flags"},
		// A flag before a subcommand leaves cobra at the group; the word
		// after it is what to name, or the subcommand whose flags to read.
		{[]string{"approvals", "--force", "revok"}, `unknown command "revok" for "spuff approvals"; did you mean revoke?; ` + "`spuff approvals --help` lists the commands"},
		{[]string{"approvals", "-x", "revok", "1"}, `unknown command "revok" for "spuff approvals"; did you mean revoke?; ` + "`spuff approvals --help` lists the commands"},
		{[]string{"approvals", "--force", "revoke", "1"}, "unknown flag: --force; `spuff approvals revoke --help` lists the flags"},
		{[]string{"--forse", "dwn"}, `unknown command "dwn" for "spuff"; did you mean deny or down?; ` + "`spuff --help` lists the commands"},
		{[]string{"--forse", "down", "web"}, "unknown flag: --forse; `spuff down --help` lists the flags"},
		{[]string{"-z", "down", "web"}, "unknown flag: -z; `spuff down --help` lists the flags"},
		{[]string{"--socket", "down", "web"}, `unknown command "web" for "spuff"; ` + "`spuff --help` lists the commands"},
	} {
		var out, errb bytes.Buffer
		if code := Main(append([]string{"--socket", sock}, c.args...), &out, &errb); code == 0 {
			t.Errorf("spuff %v succeeded", c.args)
		}
		said := errb.String()
		if !strings.Contains(said, c.want) || strings.Contains(said, "not running") || strings.Count(said, "\n") != 1 || strings.HasPrefix(said, "spuff: spuff ") {
			t.Errorf("spuff %v said %q, want %q", c.args, said, c.want)
		}
	}
}

// The root answers help and no command at all with help, as cobra does,
// and an unknown help topic says so instead of printing the root's help.
func TestRootHelpIsCobras(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "spuff.sock")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "Available Commands:"},
		{[]string{"help"}, "Available Commands:"},
		{[]string{"help", "bogus"}, `Unknown help topic [` + "`bogus`]"},
	} {
		var out, errb bytes.Buffer
		if code := Main(append([]string{"--socket", sock}, c.args...), &out, &errb); code != 0 {
			t.Errorf("spuff %v exited %d: %s", c.args, code, errb.String())
		}
		if said := out.String(); !strings.Contains(said, c.want) || strings.Contains(said, "spuff [flags]") {
			t.Errorf("spuff %v said %q, want %q and no usage line of its own", c.args, said, c.want)
		}
	}
}
