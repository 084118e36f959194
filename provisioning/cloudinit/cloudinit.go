// Package cloudinit renders the one cloud-init user-data every provider
// boots a shed with: the shed's user, sshd hardened, and two kinds of
// public key — the developer's login keys and the bus key, whose line
// lets it run nothing but `spuff-guest bus-stdio`. It renders public keys
// only: user-data is readable by any process in a cloud VM.
package cloudinit

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"golang.org/x/crypto/ssh"
)

// MaxSize is the largest user-data a provider takes (DigitalOcean's cap).
const MaxSize = 64 << 10

// BusCommand is the only command the bus key may run.
const BusCommand = "spuff-guest bus-stdio"

//go:embed user-data.tmpl
var tmplText string

var tmpl = template.Must(template.New("user-data").Funcs(template.FuncMap{
	// q quotes a value as a YAML double-quoted scalar (JSON's string
	// syntax is a subset of it), so no value can add YAML structure.
	"q": func(s string) (string, error) {
		b, err := json.Marshal(s)
		return string(b), err
	},
}).Parse(tmplText))

// Params are what a shed's user-data is made from.
type Params struct {
	// Hostname is the shed's name.
	Hostname string
	// User is the shed's login user (config provision.user).
	User string
	// LoginKeys are the developer's public keys, authorized_keys form.
	LoginKeys []string
	// BusKey is the bus key's public half, authorized_keys form.
	BusKey string
	// Run are the developer's first-boot commands (provision.run), run by
	// sh as root after spuff's own.
	Run []string
}

// A bounded repetition compiles to one copy per repeat, held for the
// process's life, so lengths are checked beside the patterns.
var (
	hostname = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`) // at most 63
	userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)             // at most 32
)

// Render returns the user-data for p.
func Render(p Params) ([]byte, error) {
	if len(p.Hostname) > 63 || !hostname.MatchString(p.Hostname) {
		return nil, fmt.Errorf("cloudinit: %q is not a hostname", p.Hostname)
	}
	if len(p.User) > 32 || !userName.MatchString(p.User) || p.User == "root" {
		return nil, fmt.Errorf("cloudinit: %q is not a user a shed can log in as", p.User)
	}
	if len(p.LoginKeys) == 0 {
		return nil, errors.New("cloudinit: no login key: the host has no public key to log in to the shed with (add a key to your ssh-agent or ~/.ssh)")
	}
	login := make([]string, 0, len(p.LoginKeys))
	for i, k := range p.LoginKeys {
		line, err := publicLine(k)
		if err != nil {
			return nil, fmt.Errorf("cloudinit: login key %d: %w", i+1, err)
		}
		login = append(login, line)
	}
	bus, err := publicLine(p.BusKey)
	if err != nil {
		return nil, fmt.Errorf("cloudinit: bus key: %w", err)
	}
	for i, c := range p.Run {
		if strings.TrimSpace(c) == "" || strings.ContainsRune(c, 0) {
			return nil, fmt.Errorf("cloudinit: run command %d is empty", i+1)
		}
	}
	var buf bytes.Buffer
	err = tmpl.Execute(&buf, struct {
		Hostname, User string
		LoginKeys      []string
		BusLine        string
		Run            string
	}{p.Hostname, p.User, login, BusLine(bus), strings.Join(p.Run, "\n")})
	if err != nil {
		return nil, fmt.Errorf("cloudinit: %w", err)
	}
	if buf.Len() > MaxSize {
		return nil, fmt.Errorf("cloudinit: user-data is %d bytes, more than providers take (%d); use fewer login keys (ssh.keys)", buf.Len(), MaxSize)
	}
	return buf.Bytes(), nil
}

// BusLine is the authorized_keys line of the bus key: restrict turns off
// every forwarding, the pty and ~/.ssh/rc; the forced command replaces
// whatever the client asks to run.
func BusLine(pub string) string {
	return `restrict,command="` + BusCommand + `" ` + pub
}

// publicLine parses one public key and gives it back in canonical form
// ("TYPE BASE64 COMMENT"), with no options: options are spuff's to set.
func publicLine(s string) (string, error) {
	k, comment, opts, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return "", fmt.Errorf("not a public key in authorized_keys form: %w", err)
	}
	if len(opts) > 0 {
		return "", errors.New("a key with authorized_keys options; give the bare key")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return "", errors.New("more than one key in one entry")
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	if c := printable(comment); c != "" {
		line += " " + c
	}
	return line, nil
}

// printable keeps a comment's visible ASCII, so a key's comment cannot
// carry control characters into a file sshd reads.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > ' ' && r < 0x7f {
			b.WriteRune(r)
		}
	}
	return b.String()
}
