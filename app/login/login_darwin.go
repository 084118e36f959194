package login

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
)

func entry(exe string) (Entry, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return Entry{}, fmt.Errorf("login: %w", err)
	}
	var esc bytes.Buffer
	_ = xml.EscapeText(&esc, []byte(exe))
	content := `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>dev.spuff.app</string>
  <key>ProgramArguments</key><array><string>` + esc.String() + `</string></array>
  <key>RunAtLoad</key><true/>
  <key>ProcessType</key><string>Interactive</string>
</dict>
</plist>
`
	return Entry{Path: filepath.Join(home, "Library", "LaunchAgents", "dev.spuff.app.plist"), Content: []byte(content)}, nil
}
