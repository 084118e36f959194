package sshkeys

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/test/testenv"
)

func TestKnownHosts(t *testing.T) {
	gh, lab, hashed, ca := newHostKey(t), newHostKey(t), newHostKey(t), newHostKey(t)
	line := func(hosts string, k hostKey) string {
		return hosts + " " + string(ssh.MarshalAuthorizedKey(k.pub))
	}
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	body := "# comment\n\n" +
		line("github.com,140.82.121.3", gh) +
		"this line is broken\n" +
		line("[gitlab.internal]:2222,*.internal,!bad.internal", lab) +
		"@cert-authority *.example " + string(ssh.MarshalAuthorizedKey(ca.pub)) +
		line("github.com", gh)
	if err := os.WriteFile(kh, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	// The secret host is known only hashed, as `HashKnownHosts yes` writes it.
	hashFile := filepath.Join(dir, "known_hosts2")
	if err := os.WriteFile(hashFile, []byte(line("secret.example", hashed)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(testenv.Tool(t, "ssh-keygen"), "-H", "-f", hashFile).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -H: %v: %s", err, out)
	}
	if b, _ := os.ReadFile(hashFile); len(b) == 0 || b[0] != '|' {
		t.Fatalf("ssh-keygen -H did not hash: %q", b)
	}

	k := NewKnownHosts(DefaultKnownHosts(dir)...)
	if got := k.Names(gh.pub.Marshal()); !slices.Equal(got, []string{"github.com", "140.82.121.3"}) {
		t.Errorf("github names %q", got)
	}
	if got := k.Names(lab.pub.Marshal()); !slices.Equal(got, []string{"[gitlab.internal]:2222"}) {
		t.Errorf("gitlab names %q (patterns must not name a host)", got)
	}
	if got := k.Names(hashed.pub.Marshal()); got != nil {
		t.Errorf("a hashed entry named its host: %q", got)
	}
	if got := k.Names(ca.pub.Marshal()); got != nil {
		t.Errorf("a CA key named a host: %q", got)
	}

	// A new entry shows up once the file changes.
	k.recheck = 0
	fresh := newHostKey(t)
	f, err := os.OpenFile(kh, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(line("new.example", fresh))
	f.Close()
	later := time.Now().Add(time.Second)
	os.Chtimes(kh, later, later)
	if got := k.Names(fresh.pub.Marshal()); !slices.Equal(got, []string{"new.example"}) {
		t.Errorf("after an append: %q", got)
	}

	var none *KnownHosts
	if none.Names(gh.pub.Marshal()) != nil {
		t.Error("nil KnownHosts named a host")
	}
}
