package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/helpers/awssts/awsststest"
	"github.com/spuff-dev/spuff/provisioning/qemu/qemutest"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// TestUpSSHDown: `spuff up demo` makes a real QEMU shed (one TCG boot),
// bootstraps it and attaches it. Inside it, through `spuff ssh demo`, the
// shed's agent lists the host's key, git clones over ssh from an sshd on
// the host with that key (the server's host key checked), the AWS endpoint
// hands out MinIO-minted session credentials, and docker-credential-spuff
// answers for the allowlisted registry only. Afterwards the shed's disk
// (its qcow2 overlay, read on the host) and its seed hold no private key but
// the shed's own host keys and none of the host's secrets. QEMU killed by
// hand makes `spuff list` say failed; `spuff down demo` leaves no QEMU
// process, no ~/.spuff/sheds/demo and no state row.
func TestUpSSHDown(t *testing.T) {
	t.Parallel()
	qemutest.Require(t)
	u := startUpHost(t)
	down := func() { _, _ = u.spuff(3*time.Minute, "", "down", "--force", "demo") }
	t.Cleanup(down)
	start := time.Now()
	out, err := u.spuff(12*time.Minute, "", "up", "demo")
	t.Logf("spuff up demo (%s):\n%s", time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("spuff up: %v\n%s", err, u.h.Log())
	}
	for _, want := range []string{"creating", "booting", "bootstrapping", "ready", "s] "} {
		if !strings.Contains(out, want) {
			t.Errorf("up's progress lacks %q", want)
		}
	}
	u.h.WaitState(t, "demo", "connected")
	if st, _, list := u.madeState(t, "demo"); st != "ready" || !strings.Contains(list, "qemu") {
		t.Errorf("spuff list after up:\n%s", list)
	}
	dir := filepath.Join(u.h.Home, "sheds", "demo")

	t.Run("ssh-add in the shed lists the key that lives only in the host's agent", func(t *testing.T) {
		out, err := u.inShed("demo", "echo \"sock=$SSH_AUTH_SOCK\"; ls -A ~/.ssh 2>/dev/null | grep -v '^authorized_keys$' | sed 's/^/own: /'; ssh-add -l; ssh-add -L\n")
		if err != nil {
			t.Fatalf("ssh-add in the shed: %v\n%s", err, out)
		}
		if !strings.Contains(out, "sock=/run/spuff/ssh-agent.sock\n") {
			t.Errorf("a login shell's SSH_AUTH_SOCK is not the shed's agent:\n%s", out)
		}
		if !strings.Contains(out, u.key.FP+" ") || !strings.Contains(out, strings.Fields(u.key.Line)[1]) {
			t.Errorf("ssh-add -l/-L lack the host's key %s:\n%s", u.key.FP, out)
		}
		if strings.Contains(out, "own: ") {
			t.Errorf("the shed's ~/.ssh has files of its own:\n%s", out)
		}
	})

	t.Run("git clone over ssh from the host's sshd through the shed's agent", func(t *testing.T) {
		url := fmt.Sprintf("ssh://%s@%s:%s%s", hostUser(t), slirpHost, u.sshd.Port, u.repo)
		script := fmt.Sprintf(`set -u
mkdir -p ~/.ssh && chmod 700 ~/.ssh
: > ~/.ssh/known_hosts_empty
printf '%%s\n' '[%s]:%s %s' > ~/.ssh/known_hosts_git
opts="-F none -o BatchMode=yes -o StrictHostKeyChecking=yes -o IdentityFile=/nonexistent"
# With the server's key unknown, ssh refuses: the check is real.
if GIT_SSH_COMMAND="ssh $opts -o UserKnownHostsFile=$HOME/.ssh/known_hosts_empty" git clone -q %s /tmp/unchecked 2>&1; then echo UNCHECKED-CLONE-WORKED; fi
GIT_SSH_COMMAND="ssh $opts -o UserKnownHostsFile=$HOME/.ssh/known_hosts_git" git clone -q %s ~/clone || exit 1
echo "subject=$(git -C ~/clone log -1 --format=%%s)"
`, slirpHost, u.sshd.Port, u.sshd.HostKeyPub, url, url)
		out, err := u.inShed("demo", script)
		if err != nil || !strings.Contains(out, "subject="+u.subject+"\n") {
			t.Fatalf("git clone in the shed: %v\n%s\nsshd:\n%s", err, out, u.sshd.Log())
		}
		if strings.Contains(out, "UNCHECKED-CLONE-WORKED") || !strings.Contains(out, "Host key verification failed") {
			t.Errorf("a clone with the server's key unknown was not refused:\n%s", out)
		}
		signs := u.h.FindAudit(t, func(r audit.Record) bool {
			return r.Shed == "demo" && r.NS == "ssh-agent" && r.Op == "sign" && r.Result == "ok" && strings.Contains(r.Detail, u.key.FP)
		})
		if len(signs) == 0 {
			t.Fatalf("no ok sign line for demo with %s in the audit log: %+v", u.key.FP, u.h.FindAudit(t, func(r audit.Record) bool { return r.Shed == "demo" }))
		}
	})

	t.Run("the AWS endpoint hands out credentials MinIO minted", func(t *testing.T) {
		// No curl in the image: bash's /dev/tcp speaks HTTP/1.0 to the
		// endpoint the login environment names, with its token file.
		out, err := u.inShed("demo", `set -eu
uri=$AWS_CONTAINER_CREDENTIALS_FULL_URI
hp=${uri#http://}; path=/${hp#*/}; hp=${hp%%/*}
exec 3<>/dev/tcp/${hp%:*}/${hp##*:}
printf 'GET %s HTTP/1.0\r\nHost: %s\r\nAuthorization: %s\r\n\r\n' "$path" "$hp" "$(cat "$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")" >&3
cat <&3
`)
		status, body := parseHTTP(out)
		var c awsCreds
		// The body holds session keys: never printed, only the status line.
		if err != nil || !strings.Contains(status, " 200 ") || json.Unmarshal([]byte(body), &c) != nil {
			t.Fatalf("GET the endpoint in the shed: %v, status %q", err, status)
		}
		if c.AccessKeyId == "" || c.SecretAccessKey == "" || c.Token == "" {
			t.Fatalf("credentials lack a field (key id %t, secret %t, token %t)", c.AccessKeyId != "", c.SecretAccessKey != "", c.Token != "")
		}
		if c.AccessKeyId == u.aws.AccessKey || c.SecretAccessKey == u.aws.SecretKey {
			t.Fatal("the shed got the source profile's long-lived key")
		}
		exp, err := time.Parse(time.RFC3339, c.Expiration)
		if err != nil || !exp.After(time.Now()) || exp.After(time.Now().Add(time.Hour+5*time.Minute)) {
			t.Errorf("Expiration %q: want within the hour (session_duration 1h)", c.Expiration)
		}
		// MinIO knows them: they list its buckets on the host, and only
		// with their session token, as temporary keys do.
		if names, err := u.listBuckets(c.AccessKeyId, c.SecretAccessKey, c.Token); err != nil || !slices.Contains(names, u.bucket) {
			t.Errorf("MinIO with the shed's credentials: %v, %v", names, err)
		}
		if _, err := u.listBuckets(c.AccessKeyId, c.SecretAccessKey, ""); err == nil {
			t.Error("MinIO took the shed's key without its session token: not a temporary key")
		}
		recs := u.h.FindAudit(t, awsAudit("demo"))
		if len(recs) == 0 || recs[0].Op != "get_credentials" || recs[0].Result != "ok" || !strings.HasPrefix(recs[0].Detail, awsststest.Role+" expires:") {
			t.Errorf("demo's AWS audit lines: %+v", recs)
		}
	})

	t.Run("docker-credential-spuff answers for the allowlisted registry only", func(t *testing.T) {
		out, err := u.inShed("demo", fmt.Sprintf("printf %%s %q | docker-credential-spuff get\n", u.reg.Addr))
		var c struct{ ServerURL, Username, Secret string }
		// The answer holds the registry's password: compared, never printed.
		if err != nil || json.Unmarshal([]byte(out), &c) != nil {
			t.Fatalf("docker-credential-spuff get %s in the shed: %v (%d bytes of output)", u.reg.Addr, err, len(out))
		}
		if c.Username != u.reg.User || c.Secret != u.reg.Password {
			t.Fatalf("get %s: user %q, the right password %t", u.reg.Addr, c.Username, c.Secret == u.reg.Password)
		}
		if !registryOK(u.reg, c.Username, c.Secret) {
			t.Error("the registry refused the login the shed got")
		}
		out, err = u.inShed("demo", fmt.Sprintf("printf %%s %q | docker-credential-spuff get\n", u.other.Addr))
		if err == nil || !strings.Contains(out, "credentials not found in native keychain") || strings.Contains(out, u.other.Password) {
			t.Fatalf("get %s (not allowlisted): %v, %d bytes of output", u.other.Addr, err, len(out))
		}
		var ok, denied bool
		for _, r := range u.h.FindAudit(t, dockerAudit("demo", "get")) {
			ok = ok || r.Result == "ok" && strings.HasPrefix(r.Detail, u.reg.Addr)
			denied = denied || r.Result == "denied" && strings.HasPrefix(r.Detail, u.other.Addr)
		}
		if !ok || !denied {
			t.Errorf("demo's docker audit lines: ok for %s %t, denied for %s %t", u.reg.Addr, ok, u.other.Addr, denied)
		}
	})

	// The session ends: a canary the shed writes (no secret) shows the
	// scan reads what the shed stored; sync puts it on the disk.
	canary := testenv.RandomSecret("spuff-canary-")
	out, err = u.inShed("demo", fmt.Sprintf("echo %s > ~/canary.txt; sudo -n sh -c 'for f in /etc/ssh/ssh_host_*_key.pub; do cat \"$f\"; echo; done'; sync; echo synced\n", canary))
	if err != nil || !strings.Contains(out, "synced") {
		t.Fatalf("sync in the shed: %v\n%s", err, out)
	}
	hostKeys := shedHostKeys(t, out)
	pinned := u.pinnedKey(t, "spuff-demo")
	if !slices.ContainsFunc(hostKeys, func(k ssh.PublicKey) bool { return string(k.Marshal()) == string(pinned.Marshal()) }) {
		t.Fatalf("the shed's host keys (%d) lack the one pinned before boot:\n%s", len(hostKeys), out)
	}

	t.Run("QEMU killed by hand: spuff list says failed", func(t *testing.T) {
		killQEMU(t, dir)
		st, note, list := u.madeState(t, "demo")
		if st != "failed" && st != "gone" && st != "" {
			t.Fatalf("spuff list after QEMU was killed says %q, want failed or gone:\n%s", st, list)
		}
		if st == "failed" && !strings.Contains(note, "QEMU") {
			t.Errorf("the failed shed's note does not say what happened: %q", note)
		}
	})

	t.Run("the shed's disk and seed hold none of the host's secrets", func(t *testing.T) {
		secrets := []harness.Secret{
			{What: "the source profile's long-lived access key id", Value: []byte(u.aws.AccessKey)},
			{What: "the source profile's long-lived secret key", Value: []byte(u.aws.SecretKey)},
			{What: "the allowlisted registry's password", Value: []byte(u.reg.Password)},
			{What: "the other registry's password", Value: []byte(u.other.Password)},
			{What: "the DigitalOcean token", Value: []byte(u.doToken)},
		}
		keySecrets, err := harness.PrivateKeySecrets("the host's private key", u.hostKeyPE)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, keySecrets...)
		if pe, err := os.ReadFile(filepath.Join(u.h.Home, "bus_ed25519")); err == nil {
			busSecrets, err := harness.PrivateKeySecrets("the bus key", pe)
			if err != nil {
				t.Fatal(err)
			}
			secrets = append(secrets, busSecrets...)
		} else {
			t.Logf("the bus key is in a keychain, not ~/.spuff/bus_ed25519: its file is not scanned for (%v)", err)
		}
		canaryWhat := "the canary"
		scan := harness.DiskScan{Secrets: append(secrets, harness.Secret{What: canaryWhat, Value: []byte(canary)}), Allowed: hostKeys}
		check := func(what, path string) {
			t.Helper()
			start := time.Now()
			fs, err := scan.File(path)
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := os.Stat(path)
			var sawCanary bool
			for _, f := range fs {
				if f.What == canaryWhat {
					sawCanary = true
					continue
				}
				t.Errorf("%s holds %s", what, f)
			}
			if !sawCanary {
				t.Errorf("%s lacks the canary the shed wrote and synced: the scan saw nothing of the shed's", what)
			}
			t.Logf("scanned %s (%d MiB) in %s", what, fi.Size()>>20, time.Since(start).Round(time.Millisecond))
		}
		overlay := filepath.Join(dir, "overlay.qcow2")
		qcow2Plain(t, overlay)
		check("the overlay (qcow2, read raw)", overlay)
		check("the overlay converted to raw by qemu-img", overlayRaw(t, overlay))

		// The seed: its vendor-data may carry the shed's own host key
		// (DESIGN §2.1), its user-data — what a cloud VM gets — no key at all.
		seed := filepath.Join(dir, "seed.iso")
		fs, err := (harness.DiskScan{Secrets: secrets, Allowed: []ssh.PublicKey{pinned}}).File(seed)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			t.Errorf("the seed holds %s", f)
		}
		ud := seedUserData(t, seed)
		if fs, err = (harness.DiskScan{Secrets: secrets}).Bytes(ud); err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			t.Errorf("the user-data holds %s", f)
		}
		if strings.Contains(string(ud), "PRIVATE KEY") || !strings.Contains(string(ud), strings.Fields(u.key.Line)[1]) {
			t.Errorf("the user-data has a private key, or lacks the login key (%d bytes)", len(ud))
		}
	})

	if out, err := u.spuff(3*time.Minute, "", "down", "demo"); err != nil {
		t.Fatalf("spuff down: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("~/.spuff/sheds/demo after down: %v", err)
	}
	if out, _ := exec.Command("pgrep", "-f", filepath.Join(u.h.Home, "sheds")).Output(); len(out) > 0 {
		t.Errorf("a QEMU process outlived down: %s", out)
	}
	if st, _, list := u.madeState(t, "demo"); st != "" || strings.Contains(list, "demo") {
		t.Errorf("demo still listed after down:\n%s", list)
	}
}
