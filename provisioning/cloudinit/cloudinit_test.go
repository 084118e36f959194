package cloudinit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fixedKey is an ed25519 public key made from a fixed seed, so the golden
// file is stable.
func fixedKey(t *testing.T, seed byte, comment string) string {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " " + comment
}

func params(t *testing.T) Params {
	return Params{
		Hostname:  "demo",
		User:      "dev",
		LoginKeys: []string{fixedKey(t, 1, "alice@laptop"), fixedKey(t, 2, "alice@yubikey")},
		BusKey:    fixedKey(t, 3, "spuff-bus"),
	}
}

func TestGolden(t *testing.T) {
	got, err := Render(params(t))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "user-data.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("user-data differs from %s (go test -update to accept):\n%s", golden, got)
	}
}

type cloudConfig struct {
	DisableRoot bool `yaml:"disable_root"`
	SSHPwauth   bool `yaml:"ssh_pwauth"`
	Users       []struct {
		Name       string   `yaml:"name"`
		Sudo       string   `yaml:"sudo"`
		LockPasswd bool     `yaml:"lock_passwd"`
		Keys       []string `yaml:"ssh_authorized_keys"`
	} `yaml:"users"`
	WriteFiles []struct {
		Path    string `yaml:"path"`
		Content string `yaml:"content"`
	} `yaml:"write_files"`
}

func parse(t *testing.T, b []byte) cloudConfig {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("#cloud-config\n")) {
		t.Fatalf("user-data does not start with #cloud-config")
	}
	var c cloudConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("user-data is not YAML: %v\n%s", err, b)
	}
	return c
}

func TestHardening(t *testing.T) {
	p := params(t)
	b, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	c := parse(t, b)
	if !c.DisableRoot || c.SSHPwauth {
		t.Errorf("disable_root %v ssh_pwauth %v, want true and false", c.DisableRoot, c.SSHPwauth)
	}
	if len(c.Users) != 1 {
		t.Fatalf("users: %+v, want only the shed's user (no distro default user)", c.Users)
	}
	u := c.Users[0]
	if u.Name != "dev" || u.Sudo != "ALL=(ALL) NOPASSWD:ALL" || !u.LockPasswd {
		t.Errorf("user: %+v", u)
	}
	want := []string{p.LoginKeys[0], p.LoginKeys[1], `restrict,command="spuff-guest bus-stdio" ` + p.BusKey}
	if strings.Join(u.Keys, "\n") != strings.Join(want, "\n") {
		t.Errorf("authorized keys:\n%s\nwant:\n%s", strings.Join(u.Keys, "\n"), strings.Join(want, "\n"))
	}
	var sshd string
	for _, f := range c.WriteFiles {
		if f.Path == "/etc/ssh/sshd_config.d/00-spuff.conf" {
			sshd = f.Content
		}
	}
	for _, line := range []string{"PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin no",
		"AllowAgentForwarding no", "AllowTcpForwarding no", "X11Forwarding no", "AuthenticationMethods publickey"} {
		if !strings.Contains(sshd, "\n"+line+"\n") {
			t.Errorf("sshd drop-in lacks %q:\n%s", line, sshd)
		}
	}
}

func TestNothingSecret(t *testing.T) {
	b, err := Render(params(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"PRIVATE KEY", "-----BEGIN", "token", "password:", "plain_text_passwd", "hashed_passwd", "chpasswd", "AKIA"} {
		if bytes.Contains(bytes.ToLower(b), bytes.ToLower([]byte(bad))) {
			t.Errorf("user-data contains %q", bad)
		}
	}
	// A private key handed over by mistake is refused, not rendered.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := params(t)
	p.LoginKeys = []string{string(pem.EncodeToMemory(blk))}
	if out, err := Render(p); err == nil || bytes.Contains(out, []byte("PRIVATE")) {
		t.Fatalf("rendered a private key: %v", err)
	}
	p = params(t)
	p.BusKey = string(pem.EncodeToMemory(blk))
	if _, err := Render(p); err == nil {
		t.Fatal("rendered a private bus key")
	}
}

func TestKeysCannotAddStructure(t *testing.T) {
	p := params(t)
	p.LoginKeys = []string{strings.Fields(p.LoginKeys[0])[0] + " " + strings.Fields(p.LoginKeys[0])[1] + ` x"\n  - injected: "yes`}
	b, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	c := parse(t, b)
	var top map[string]any
	_ = yaml.Unmarshal(b, &top)
	if _, ok := top["injected"]; ok || len(c.Users[0].Keys) != 2 {
		t.Fatalf("a key comment reached the YAML structure:\n%s", b)
	}
	// A hostname label and a user name at their length bounds render.
	if _, err := Render(Params{Hostname: strings.Repeat("h", 63), User: strings.Repeat("u", 32), LoginKeys: p.LoginKeys, BusKey: p.BusKey}); err != nil {
		t.Errorf("refused names at their bounds: %v", err)
	}
	for _, bad := range []Params{
		{Hostname: "Demo!", User: "dev", LoginKeys: p.LoginKeys, BusKey: p.BusKey},
		{Hostname: "demo", User: "root", LoginKeys: p.LoginKeys, BusKey: p.BusKey},
		{Hostname: strings.Repeat("h", 64), User: "dev", LoginKeys: p.LoginKeys, BusKey: p.BusKey},
		{Hostname: "demo", User: strings.Repeat("u", 33), LoginKeys: p.LoginKeys, BusKey: p.BusKey},
		{Hostname: "demo", User: "dev", BusKey: p.BusKey},
		{Hostname: "demo", User: "dev", LoginKeys: []string{`command="sh" ` + params(t).LoginKeys[0]}, BusKey: p.BusKey},
	} {
		if _, err := Render(bad); err == nil {
			t.Errorf("rendered %+v", bad)
		}
	}
}

// DigitalOcean takes at most 64 KiB of user-data: a developer with many
// large keys still fits, and too many is an error that says what to do.
func TestSizeCap(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := ssh.NewPublicKey(&k.PublicKey)
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " someone@somewhere"
	p := params(t)
	p.LoginKeys = nil
	for range 40 {
		p.LoginKeys = append(p.LoginKeys, line)
	}
	b, err := Render(p)
	if err != nil || len(b) > MaxSize {
		t.Fatalf("40 RSA-4096 keys: %d bytes, %v", len(b), err)
	}
	for range 60 {
		p.LoginKeys = append(p.LoginKeys, line)
	}
	if _, err := Render(p); err == nil || !strings.Contains(err.Error(), "fewer login keys") {
		t.Fatalf("100 RSA-4096 keys: %v, want a size error", err)
	}
}

// provision.run lands last in runcmd as one `sh -ec` of the commands, so
// the first that fails is the script's status; a value cannot add YAML.
func TestRunCommands(t *testing.T) {
	p := params(t)
	p.Run = []string{"apt-get install -y ripgrep", "echo 'x: [y]' > /etc/motd\nfalse"}
	b, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	var cc struct {
		Runcmd []any `yaml:"runcmd"`
	}
	if err := yaml.Unmarshal(b, &cc); err != nil {
		t.Fatal(err)
	}
	if len(cc.Runcmd) != 2 {
		t.Fatalf("runcmd %v", cc.Runcmd)
	}
	last, ok := cc.Runcmd[1].([]any)
	if !ok || len(last) != 3 || last[0] != "sh" || last[1] != "-ec" || last[2] != "apt-get install -y ripgrep\necho 'x: [y]' > /etc/motd\nfalse" {
		t.Fatalf("the run item: %#v", cc.Runcmd[1])
	}
	p.Run = []string{" "}
	if _, err := Render(p); err == nil {
		t.Error("an empty run command rendered")
	}
}
