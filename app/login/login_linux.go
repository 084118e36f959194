package login

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func entry(exe string) (Entry, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return Entry{}, fmt.Errorf("login: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	// Exec quoting per the Desktop Entry spec: the path goes in double quotes.
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", "$", `\$`).Replace(exe)
	content := "[Desktop Entry]\nType=Application\nName=spuff\nComment=Credentials for your sheds, brokered by this computer\n" +
		"Exec=\"" + q + "\"\nTerminal=false\nX-GNOME-Autostart-enabled=true\n"
	return Entry{Path: filepath.Join(dir, "autostart", "spuff.desktop"), Content: []byte(content)}, nil
}
