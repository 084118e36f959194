// Package awsststest starts the real peer the AWS credential tests talk to:
// a MinIO server (STS and S3) on 127.0.0.1 with a fresh root login, a user
// whose long-lived keys play the host's source profile, and buckets. It
// writes the scratch ~/.aws files a source profile lives in. Every process
// it starts is stopped by t.Cleanup.
package awsststest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/test/testenv"
)

// Region is the region MinIO is run in and clients sign for.
const Region = "us-east-1"

// Role is a role ARN for configs; MinIO's AssumeRole takes any.
const Role = "arn:aws:iam::123456789012:role/spuff-test"

// AllowS3 is the policy attached to users AddUser creates.
const AllowS3 = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]}]}`

// DenyListing is a session policy that keeps every S3 action but listing:
// MinIO answers ListBuckets from the buckets a session may list or locate
// when ListAllMyBuckets is denied, so all three are denied.
const DenyListing = `{"Version":"2012-10-17","Statement":[` +
	`{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]},` +
	`{"Effect":"Deny","Action":["s3:ListAllMyBuckets","s3:ListBucket","s3:GetBucketLocation"],"Resource":["arn:aws:s3:::*"]}]}`

// MinIO is a running minio server.
type MinIO struct {
	Endpoint string // http://127.0.0.1:PORT, for S3 and STS alike
	Dir      string
	mc       string
	mcEnv    []string
	proc     *testenv.Process
}

// User is a MinIO user: long-lived keys, the kind a source profile holds.
type User struct {
	AccessKey string
	SecretKey string
}

// StartMinIO runs the pinned minio from ~/.cache/spuff/bin (scripts/setup-aws.sh)
// with data in a temp dir and a root login made for this test.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin := testenv.Tool(t, "minio")
	mc := testenv.Tool(t, "mc")
	dir := t.TempDir()
	rootUser, rootPass := "root"+RandomSecret()[2:14], RandomSecret()
	for attempt := 0; ; attempt++ {
		addr := testenv.FreeAddr(t)
		m := &MinIO{Endpoint: "http://" + addr, Dir: dir, mc: mc}
		cmd := exec.Command(bin, "server", "--quiet", "--address", addr, filepath.Join(dir, "data"))
		cmd.Env = append(cleanEnv(),
			"MINIO_ROOT_USER="+rootUser,
			"MINIO_ROOT_PASSWORD="+rootPass,
			"MINIO_BROWSER=off",
			"MINIO_UPDATE=off",
			"HOME="+dir,
		)
		p, err := testenv.StartProcess("minio", cmd)
		if err != nil {
			t.Fatal(err)
		}
		m.proc = p
		// Another test may take the free port before minio binds it: retry.
		err = p.WaitReady(20*time.Second, ready(m.Endpoint))
		if err == nil {
			t.Cleanup(p.Stop)
			m.mcEnv = append(cleanEnv(),
				"MC_CONFIG_DIR="+filepath.Join(dir, "mc"),
				"MC_HOST_spuff=http://"+rootUser+":"+rootPass+"@"+addr,
				"MC_NO_COLOR=1",
			)
			return m
		}
		p.Stop()
		if attempt == 2 {
			t.Fatalf("minio did not become ready on %s: %v", addr, err)
		}
	}
}

// Log is what minio printed so far.
func (m *MinIO) Log() string { return m.proc.Log() }

// AddUser creates a user allowed s3:* on every bucket.
func (m *MinIO) AddUser(t testing.TB) User {
	t.Helper()
	u := User{AccessKey: "AKSPUFF" + strings.ToUpper(RandomSecret()[2:15]), SecretKey: RandomSecret()}
	m.MC(t, "admin", "user", "add", "spuff", u.AccessKey, u.SecretKey)
	pol := filepath.Join(m.Dir, "allow-s3.json")
	if err := os.WriteFile(pol, []byte(AllowS3), 0o600); err != nil {
		t.Fatal(err)
	}
	m.MC(t, "admin", "policy", "create", "spuff", "spuff-allow-s3", pol)
	m.MC(t, "admin", "policy", "attach", "spuff", "spuff-allow-s3", "--user", u.AccessKey)
	return u
}

// MakeBucket creates a bucket.
func (m *MinIO) MakeBucket(t testing.TB, name string) {
	t.Helper()
	m.MC(t, "mb", "spuff/"+name)
}

// MC runs mc against this server as root (the alias is "spuff").
func (m *MinIO) MC(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.mc, args...)
	cmd.Env = m.mcEnv
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		// mc's output names users and policies, never the root password.
		t.Fatalf("mc %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// AWSFiles are a scratch ~/.aws: AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE.
type AWSFiles struct {
	Config      string
	Credentials string
}

// WriteProfile writes profile with u's keys into dir/.aws (credentials and
// config, both 0600) and returns the two paths.
func WriteProfile(t testing.TB, dir, profile string, u User) AWSFiles {
	t.Helper()
	d := filepath.Join(dir, ".aws")
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	f := AWSFiles{Config: filepath.Join(d, "config"), Credentials: filepath.Join(d, "credentials")}
	section := "profile " + profile
	if profile == "default" {
		section = "default"
	}
	cfg := fmt.Sprintf("[%s]\nregion = %s\n", section, Region)
	creds := fmt.Sprintf("[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n", profile, u.AccessKey, u.SecretKey)
	if err := os.WriteFile(f.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Credentials, []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// cleanEnv is the test process's environment without AWS_*, MINIO_* and
// MC_* variables, so nothing of the developer's leaks into a peer.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "MINIO_") || strings.HasPrefix(k, "MC_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func ready(endpoint string) func() bool {
	client := &http.Client{Timeout: time.Second}
	return func() bool {
		resp, err := client.Get(endpoint + "/minio/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

// RandomSecret returns a fresh secret that is easy to grep for.
func RandomSecret() string { return testenv.RandomSecret("sk") }
