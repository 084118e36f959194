package tray

import (
	"os/exec"
	"strings"
)

// terminal asks Terminal.app to run argv in a new window.
func terminal(argv []string) (*exec.Cmd, error) {
	return exec.Command("osascript",
		"-e", `tell application "Terminal" to do script `+appleScriptString(shellLine(argv)),
		"-e", `tell application "Terminal" to activate`), nil
}

// shellLine quotes each word for the shell Terminal.app runs it in.
func shellLine(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// appleScriptString is s as an AppleScript string literal.
func appleScriptString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
