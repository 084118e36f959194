package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/helpers/awssts/awsststest"
	"github.com/spuff-dev/spuff/helpers/dockercreds/dockertest"
	"github.com/spuff-dev/spuff/helpers/sshkeys/sshkeystest"
	"github.com/spuff-dev/spuff/provisioning/digitalocean/dofake"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// slirpHost is the host as a shed under QEMU's user networking sees it:
// a connection to 10.0.2.2:PORT reaches 127.0.0.1:PORT on the host.
const slirpHost = "10.0.2.2"

// upHost is the developer's computer for the end-to-end shed test: a key
// that lives only in its ssh-agent, an sshd serving a bare git repository,
// MinIO as STS with a source profile's long-lived keys, two registries
// whose logins sit in a pass store behind docker-credential-pass (only one
// allowlisted), a DigitalOcean token in spuff-app's environment (its API a
// fake on loopback, so listing asks nothing outside), and spuff-app.
type upHost struct {
	h         *harness.Host
	cli       string
	key       sshkeystest.Key
	sshd      *testenv.SSHD
	repo      string // the bare repository's path on the host
	subject   string // its one commit's subject
	minio     *awsststest.MinIO
	aws       awsststest.User
	bucket    string
	reg       *dockertest.Registry // allowlisted
	other     *dockertest.Registry // not allowlisted
	doToken   string
	hostKeyPE []byte // the agent key's private key file
}

func startUpHost(t *testing.T) *upHost {
	t.Helper()
	u := &upHost{bucket: "spuff-up", subject: testenv.RandomSecret("seeded on the host ")}
	home := harness.ShortTempDir(t)
	// The key's file lives outside the harness's home: spuff-app and the
	// ssh of `spuff ssh` reach it only through the agent.
	u.key = sshkeystest.NewKey(t, t.TempDir(), "id_ed25519", "ed25519")
	var err error
	if u.hostKeyPE, err = os.ReadFile(u.key.Path); err != nil {
		t.Fatal(err)
	}
	agent := sshkeystest.StartAgent(t, u.key.Path)

	u.sshd = testenv.StartSSHD(t, u.key.Line+"\n")
	u.repo = filepath.Join(t.TempDir(), "repo.git")
	seed := t.TempDir()
	hostGit(t, "", "init", "-q", "--bare", "-b", "main", u.repo)
	hostGit(t, seed, "init", "-q", "-b", "main")
	hostGit(t, seed, "commit", "-q", "--allow-empty", "-m", u.subject)
	hostGit(t, seed, "push", "-q", u.repo, "main")

	u.minio = awsststest.StartMinIO(t)
	u.aws = u.minio.AddUser(t)
	u.minio.MakeBucket(t, u.bucket)
	awsFiles := awsststest.WriteProfile(t, home, "dev", u.aws)

	pass := dockertest.NewPass(t)
	u.reg = dockertest.StartRegistry(t, "alice", dockertest.RandomSecret())
	u.other = dockertest.StartRegistry(t, "bob", dockertest.RandomSecret())
	pass.Store(t, u.reg.Addr, u.reg.User, u.reg.Password)
	pass.Store(t, u.other.Addr, u.other.User, u.other.Password)
	hostDocker := filepath.Join(home, ".docker")
	dockertest.WriteConfig(t, hostDocker, map[string]any{
		"auths":      map[string]any{u.reg.Addr: map[string]any{}, u.other.Addr: map[string]any{}},
		"credsStore": "pass",
	})

	u.doToken = testenv.RandomSecret("dop_v1_") + testenv.RandomSecret("")
	do := dofake.New(t, u.doToken)

	buildGuestBins(t, filepath.Join(home, "bin"))
	cfg := fmt.Sprintf(`provision: {provider: qemu, user: dev}
qemu: {cpus: 2, memory: 1GiB}
aws:
  source_profile: dev
  region: %s
  default_role: %s
  sts_endpoint: %s
docker:
  registries: [%q]
`, awsststest.Region, awsststest.Role, u.minio.Endpoint, u.reg.Addr)
	env := map[string]string{
		"HOME":                        home,
		"SSH_AUTH_SOCK":               agent.Sock,
		"SPUFF_GUEST_BIN_DIR":         filepath.Join(home, "bin"),
		"XDG_CACHE_HOME":              filepath.Dir(testenv.CacheDir()),
		"AWS_CONFIG_FILE":             awsFiles.Config,
		"AWS_SHARED_CREDENTIALS_FILE": awsFiles.Credentials,
		"DOCKER_CONFIG":               hostDocker,
		"DIGITALOCEAN_TOKEN":          u.doToken,
		"SPUFF_DIGITALOCEAN_API_URL":  do.URL,
	}
	for k, v := range pass.EnvMap() {
		env[k] = v
	}
	u.h = harness.Start(t, harness.Options{Config: cfg, Env: env})
	u.cli = testenv.GoBinary(t, "./app/cmd/spuff")
	return u
}

// spuff runs the spuff CLI with stdin and returns what it printed.
func (u *upHost) spuff(timeout time.Duration, stdin string, args ...string) (string, error) {
	var out bytes.Buffer
	err := runSpuff(u.h, u.cli, timeout, strings.NewReader(stdin), &out, &out, args...)
	return out.String(), err
}

// inShed runs a bash script in a login shell of shed name through
// `spuff ssh NAME -- bash -l -s`, as a developer's terminal would.
func (u *upHost) inShed(name, script string) (string, error) {
	return u.spuff(3*time.Minute, script, "ssh", name, "--", "bash", "-l", "-s")
}

// madeState is the STATE `spuff list` prints for a made shed ("" when it
// lists none of that name) and its NOTE.
func (u *upHost) madeState(t *testing.T, name string) (state, note, list string) {
	t.Helper()
	list, err := u.spuff(time.Minute, "", "list")
	if err != nil {
		t.Fatalf("spuff list: %v\n%s", err, list)
	}
	made := false
	sc := bufio.NewScanner(strings.NewReader(list))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && f[0] == "MADE" {
			made = true
			continue
		}
		if made && len(f) >= 3 && f[0] == name {
			if i := strings.Index(sc.Text(), "ago"); i >= 0 {
				note = strings.TrimSpace(sc.Text()[i+3:])
			}
			return f[2], note, list
		}
	}
	return "", "", list
}

// awsCreds are container credentials as the shed's endpoint serves them.
type awsCreds struct{ AccessKeyId, SecretAccessKey, Token, Expiration string }

// parseHTTP splits a raw HTTP/1.x response into its status line and body.
func parseHTTP(raw string) (status, body string) {
	head, body, _ := strings.Cut(raw, "\r\n\r\n")
	status, _, _ = strings.Cut(head, "\r\n")
	return status, body
}

// listBuckets lists MinIO's buckets on the host with the given keys.
func (u *upHost) listBuckets(ak, sk, token string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s3.New(s3.Options{
		Region:       awsststest.Region,
		BaseEndpoint: aws.String(u.minio.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(ak, sk, token),
	})
	out, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, b := range out.Buckets {
		names = append(names, aws.ToString(b.Name))
	}
	return names, nil
}

// registryOK reports whether the registry takes user/password (GET /v2/ is 200).
func registryOK(r *dockertest.Registry, user, password string) bool {
	code, err := r.Ping(user, password)
	return err == nil && code == http.StatusOK
}

// shedHostKeys parses the public host keys a shed printed (the .pub files).
func shedHostKeys(t *testing.T, out string) []ssh.PublicKey {
	t.Helper()
	var keys []ssh.PublicKey
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "ssh-") && !strings.HasPrefix(l, "ecdsa-") {
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(l))
		if err != nil {
			t.Fatalf("a host key line of the shed: %v", err)
		}
		keys = append(keys, k)
	}
	return keys
}

// pinnedKey is the host key ~/.spuff/known_hosts holds for alias.
func (u *upHost) pinnedKey(t *testing.T, alias string) ssh.PublicKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(u.h.Home, "known_hosts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if h, rest, ok := strings.Cut(l, " "); ok && h == alias {
			k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rest))
			if err != nil {
				t.Fatal(err)
			}
			return k
		}
	}
	t.Fatalf("no key pinned for %s", alias)
	return nil
}

// hostUser is who the host's sshd logs the shed in as: the test's user.
func hostUser(t *testing.T) string {
	t.Helper()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return me.Username
}

// killQEMU SIGKILLs the QEMU of shed dir and waits until it is gone (a
// zombie counts as gone).
func killQEMU(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "qemu.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("qemu.pid holds %q", b)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !bytes.Contains(cmdline, []byte(dir+"/")) {
		t.Fatalf("pid %d is not the shed's QEMU", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Gone once every thread is: the main one can be a zombie while the
	// vCPU threads still exit, holding the disk image's lock.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if allThreadsEnded(pid) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("QEMU pid %d outlived SIGKILL by 30s", pid)
}

// allThreadsEnded reports whether every thread of pid is a zombie or gone.
func allThreadsEnded(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return true
	}
	for _, task := range tasks {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			continue // reaped since it was listed
		}
		if i := bytes.LastIndexByte(st, ')'); i <= 0 || len(st) <= i+2 || (st[i+2] != 'Z' && st[i+2] != 'X') {
			return false
		}
	}
	return true
}

// seedUserData reads user-data from a NoCloud seed ISO.
func seedUserData(t *testing.T, iso string) []byte {
	t.Helper()
	files, _ := testenv.ReadSeed(t, iso)
	if files["user-data"] == "" {
		t.Fatal("the seed's user-data is empty")
	}
	return []byte(files["user-data"])
}

// qcow2Plain checks that the qcow2 at path stores its clusters as they
// are, so a byte scan of it sees what the shed wrote: not encrypted, and
// no compressed cluster (QEMU compresses only when told to).
func qcow2Plain(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("qemu-img info: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("qemu-img info: %v", err)
	}
	var info struct {
		Format    string `json:"format"`
		Encrypted bool   `json:"encrypted"`
	}
	if err := json.Unmarshal(out, &info); err != nil || info.Format != "qcow2" || info.Encrypted {
		t.Fatalf("qemu-img info of the overlay: %+v, %v", info, err)
	}
	// check exits 3 for leaked clusters, which a killed QEMU may leave;
	// its JSON is printed either way.
	out, _ = exec.Command("qemu-img", "check", "--output=json", path).Output()
	var chk struct {
		Allocated  *int64 `json:"allocated-clusters"`
		Compressed *int64 `json:"compressed-clusters"`
	}
	if err := json.Unmarshal(out, &chk); err != nil || chk.Allocated == nil || *chk.Allocated == 0 {
		t.Fatalf("qemu-img check of the overlay: %s, %v", out, err)
	}
	if chk.Compressed != nil && *chk.Compressed != 0 {
		t.Fatalf("the overlay has %d compressed clusters: a byte scan cannot read them", *chk.Compressed)
	}
}

// overlayRaw converts the overlay alone (its backing file cut off, so
// what the base image holds reads as zeros) to a sparse raw image.
func overlayRaw(t *testing.T, overlay string) string {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "overlay.raw")
	spec, _ := json.Marshal(map[string]any{"driver": "qcow2", "backing": nil, "file": map[string]any{"driver": "file", "filename": overlay}})
	if out, err := exec.Command("qemu-img", "convert", "-O", "raw", "json:"+string(spec), raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	return raw
}
