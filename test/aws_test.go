package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/helpers/awssts/awsststest"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// awsProgramEnv makes this test binary the "small aws-sdk-go-v2 program"
// run in a shed: re-executed with only the shed's environment, it lists
// buckets through the default credential chain and exits.
const awsProgramEnv = "SPUFF_TEST_AWS_PROGRAM"

func init() {
	if os.Getenv(awsProgramEnv) != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err == nil {
		var out *s3.ListBucketsOutput
		out, err = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).ListBuckets(ctx, &s3.ListBucketsInput{})
		if err == nil {
			for _, b := range out.Buckets {
				fmt.Println(aws.ToString(b.Name))
			}
			os.Exit(0)
		}
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(3)
}

// awsHost is the developer's computer for the AWS tests: MinIO as STS and
// S3, a MinIO user's long-lived keys as source profile "dev" in a scratch
// ~/.aws, and spuff-app assuming roles from it. Shed "locked" has a session
// policy that denies listing.
type awsHost struct {
	m     *awsststest.MinIO
	user  awsststest.User
	h     *harness.Host
	cli   string // Debian's AWS CLI v2
	files awsststest.AWSFiles
}

func startAWSHost(t testing.TB) *awsHost {
	t.Helper()
	a := &awsHost{cli: awsCLI(t), m: awsststest.StartMinIO(t)}
	a.user = a.m.AddUser(t)
	a.m.MakeBucket(t, "spuff-one")
	home := harness.ShortTempDir(t)
	a.files = awsststest.WriteProfile(t, home, "dev", a.user)
	cfg := fmt.Sprintf(`aws:
  source_profile: dev
  region: %s
  default_role: %s
  sts_endpoint: %s
limits:
  requests_per_second: 100000
  burst: 100000
sheds:
  locked:
    aws:
      session_policy: '%s'
`, awsststest.Region, awsststest.Role, a.m.Endpoint, awsststest.DenyListing)
	a.h = harness.Start(t, harness.Options{Config: cfg, Env: map[string]string{
		"HOME":                        home,
		"AWS_CONFIG_FILE":             a.files.Config,
		"AWS_SHARED_CREDENTIALS_FILE": a.files.Credentials,
	}})
	return a
}

// awsCLI finds the AWS CLI v2 (Debian's awscli at /usr/bin/aws comes
// first: a v1 from pip may shadow it in PATH).
func awsCLI(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/aws", testenv.Tool(t, "aws")} {
		out, err := exec.Command(p, "--version").CombinedOutput()
		if err == nil && strings.HasPrefix(string(out), "aws-cli/2") {
			return p
		}
	}
	testenv.Missing(t, "the AWS CLI v2", "apt-get install awscli")
	return ""
}

// shedEnv is a program's environment in shed g: the shed's, with no AWS
// variable of the test process's but the container-credentials ones the
// shed sets, and S3 pointed at MinIO.
func (a *awsHost) shedEnv(g *harness.Guest) []string {
	var env []string
	for _, kv := range g.Env() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") && !strings.HasPrefix(k, "AWS_CONTAINER_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"AWS_REGION="+awsststest.Region,
		"AWS_ENDPOINT_URL_S3="+a.m.Endpoint,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER=",
	)
}

// cliLS runs `aws s3 ls` in shed g.
func (a *awsHost) cliLS(g *harness.Guest) (string, error) {
	cmd := exec.Command(a.cli, "--endpoint-url", a.m.Endpoint, "s3", "ls")
	cmd.Env, cmd.Dir = a.shedEnv(g), g.Dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// sdkLS runs the aws-sdk-go-v2 program in shed g.
func (a *awsHost) sdkLS(g *harness.Guest) (string, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env, cmd.Dir = append(a.shedEnv(g), awsProgramEnv+"=1"), g.Dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// awsGET fetches the endpoint of shed g as an SDK does, with auth as the
// Authorization header ("" sends none).
func awsGET(t testing.TB, c *http.Client, g *harness.Guest, method, path, auth string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+g.AWSAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func awsToken(t testing.TB, g *harness.Guest) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(g.RunDir, "aws-token"))
	if err != nil {
		t.Fatalf("the shed has no aws-token: %v", err)
	}
	return string(b)
}

// assumeRoleCalls reads the AWS helper's AssumeRole counter from `spuff status --json`.
func (a *awsHost) assumeRoleCalls(t testing.TB) int64 {
	t.Helper()
	var st struct {
		Helpers map[string]struct {
			AssumeRoleCalls *int64 `json:"assume_role_calls"`
		} `json:"helpers"`
	}
	out := a.h.MustSpuff(t, "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("spuff status --json: %v\n%s", err, out)
	}
	if n := st.Helpers["aws-credentials"].AssumeRoleCalls; n != nil {
		return *n
	}
	t.Fatalf("spuff status --json has no helpers.aws-credentials.assume_role_calls:\n%s", out)
	return 0
}

func awsAudit(shed string) func(audit.Record) bool {
	return func(r audit.Record) bool { return r.Shed == shed && r.NS == "aws-credentials" }
}

func TestAWSCredentials(t *testing.T) {
	a := startAWSHost(t)
	alpha := a.h.Guest(t, "alpha")
	locked := a.h.Guest(t, "locked")

	t.Run("the AWS CLI and an SDK program list buckets in the shed", func(t *testing.T) {
		out, err := a.cliLS(alpha)
		if err != nil || !strings.Contains(out, "spuff-one") {
			t.Fatalf("aws s3 ls in alpha: %v\n%s\nspuff-app:\n%s\nguest:\n%s", err, out, a.h.Log(), alpha.Log())
		}
		out, err = a.sdkLS(alpha)
		if err != nil || !slices.Contains(strings.Fields(out), "spuff-one") {
			t.Fatalf("the SDK program in alpha: %v\n%s", err, out)
		}
		recs := a.h.FindAudit(t, awsAudit("alpha"))
		if len(recs) == 0 {
			t.Fatal("no audit line for alpha's credentials")
		}
		for _, r := range recs {
			if r.Op != "get_credentials" || r.Result != "ok" || !strings.HasPrefix(r.Detail, awsststest.Role+" expires:") {
				t.Errorf("audit line %+v, want ok with detail %q", r, awsststest.Role+" expires:HH:MM")
			}
		}
	})

	t.Run("a session policy denies listing in one shed only", func(t *testing.T) {
		out, err := a.cliLS(locked)
		if err == nil || !strings.Contains(out, "AccessDenied") {
			t.Fatalf("aws s3 ls in locked = %v\n%s\nwant AccessDenied", err, out)
		}
		if out, err := a.sdkLS(locked); err == nil || !strings.Contains(out, "AccessDenied") {
			t.Fatalf("the SDK program in locked = %v\n%s\nwant AccessDenied", err, out)
		}
		// The policy narrows the role; it does not break the session.
		cp := exec.Command(a.cli, "--endpoint-url", a.m.Endpoint, "s3", "cp", "-", "s3://spuff-one/from-locked.txt")
		cp.Env, cp.Stdin = a.shedEnv(locked), strings.NewReader("hello\n")
		if out, err := cp.CombinedOutput(); err != nil {
			t.Errorf("aws s3 cp in locked: %v\n%s", err, out)
		}
		if out, err := a.cliLS(alpha); err != nil || !strings.Contains(out, "spuff-one") {
			t.Errorf("alpha lost its listing: %v\n%s", err, out)
		}
	})

	t.Run("the endpoint refuses", func(t *testing.T) {
		c := &http.Client{Timeout: 10 * time.Second}
		tok := awsToken(t, alpha)
		for _, tc := range []struct {
			method, path, auth string
			want               int
		}{
			{"GET", "/credentials", "", 401},
			{"GET", "/credentials", "wrong-token", 401},
			{"GET", "/credentials", "Bearer " + tok, 401},
			{"POST", "/credentials", tok, 405},
			{"GET", "/", tok, 404},
			{"GET", "/latest/meta-data/iam/security-credentials/", tok, 404},
		} {
			if code, body := awsGET(t, c, alpha, tc.method, tc.path, tc.auth); code != tc.want {
				t.Errorf("%s %s: %d, want %d (%s)", tc.method, tc.path, code, tc.want, body)
			}
		}
		// The guest's token guards only its own shed.
		if code, _ := awsGET(t, c, locked, "GET", "/credentials", tok); code != 401 {
			t.Errorf("alpha's token opened locked's endpoint: %d", code)
		}
	})

	t.Run("100 concurrent GETs, one AssumeRole", func(t *testing.T) {
		crowd := a.h.Guest(t, "crowd")
		tok := awsToken(t, crowd)
		before := a.assumeRoleCalls(t)
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
		var wg sync.WaitGroup
		var mu sync.Mutex
		keys := map[string]int{}
		var failures []string
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, body := awsGET(t, c, crowd, "GET", "/credentials", tok)
				var creds struct{ AccessKeyId, SecretAccessKey, Token, Expiration string }
				err := json.Unmarshal(body, &creds)
				mu.Lock()
				defer mu.Unlock()
				if code != 200 || err != nil || creds.SecretAccessKey == "" {
					failures = append(failures, fmt.Sprintf("%d %s", code, body))
					return
				}
				keys[creds.AccessKeyId]++
			}()
		}
		wg.Wait()
		if len(failures) > 0 {
			t.Fatalf("%d of 100 GETs failed, e.g. %s", len(failures), failures[0])
		}
		if len(keys) != 1 {
			t.Errorf("100 GETs got %d different sessions", len(keys))
		}
		if n := a.assumeRoleCalls(t) - before; n != 1 {
			t.Errorf("100 concurrent GETs made %d AssumeRole calls (spuff status --json), want 1", n)
		}
		if n := len(a.h.FindAudit(t, awsAudit("crowd"))); n != 100 {
			t.Errorf("%d audit lines for 100 GETs", n)
		}
	})

	t.Run("no long-lived key in the shed", func(t *testing.T) {
		needles := [][]byte{[]byte(a.user.AccessKey), []byte(a.user.SecretKey)}
		for _, g := range []*harness.Guest{alpha, locked} {
			g.AssertNoSecret(t, []harness.Secret{
				{What: "the source profile's long-lived access key id", Value: needles[0]},
				{What: "the source profile's long-lived secret key", Value: needles[1]},
			})
		}
		al, err := os.ReadFile(a.h.AuditPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needles {
			if bytes.Contains(al, n) {
				t.Error("the audit log holds the source profile's key")
			}
		}
		if bytes.Contains([]byte(a.h.Log()), needles[1]) {
			t.Error("spuff-app's log holds the source profile's secret")
		}
	})

	t.Run("the endpoint binds loopback only", func(t *testing.T) {
		ip := awsOutboundIP()
		if ip == nil {
			t.Skip("this machine has no address but loopback")
		}
		addr := net.JoinHostPort(ip.String(), fmt.Sprint(awsFreePort(t)))
		dir := harness.ShortTempDir(t)
		var log bytes.Buffer
		cmd := exec.Command(testenv.GoBinary(t, "./guest/cmd/spuff-guest"), "serve", "--run-dir", filepath.Join(dir, "run"), "--aws-listen", addr)
		cmd.Env, cmd.Stdout, cmd.Stderr = append(os.Environ(), "HOME="+dir), &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// Either it refuses to start, or it starts without listening there.
		select {
		case err := <-exited:
			if err == nil || !strings.Contains(log.String(), "loopback") {
				t.Errorf("spuff-guest --aws-listen %s exited with %v and did not say why:\n%s", addr, err, log.String())
			}
			return
		case <-time.After(3 * time.Second):
		}
		defer func() { cmd.Process.Kill(); <-exited }()
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("spuff-guest --aws-listen %s accepts connections there", addr)
		}
	})

	t.Run("a stopped host: 503 with what to do", func(t *testing.T) {
		a.h.Stop(t)
		code, body := awsGET(t, &http.Client{Timeout: 20 * time.Second}, alpha, "GET", "/credentials", awsToken(t, alpha))
		var p struct{ Code, Message, Hint string }
		if err := json.Unmarshal(body, &p); err != nil || code != 503 || !strings.Contains(p.Message, "spuff-app --headless") {
			t.Errorf("with spuff-app stopped: %d %s", code, body)
		}
		out, err := a.cliLS(alpha)
		if err == nil || !strings.Contains(out, "spuff-app --headless") {
			t.Errorf("aws s3 ls with spuff-app stopped: %v\n%s", err, out)
		}
	})
}

// awsOutboundIP is an address of this machine other than loopback, if any.
func awsOutboundIP() net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	return nil
}

func awsFreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// debianBoto3 runs Debian 12's python3-boto3 (which reads only
// AWS_CONTAINER_AUTHORIZATION_TOKEN, not its _FILE) with env, listing
// buckets; a newer boto3 from pip is kept out of sys.path.
func (a *awsHost) debianBoto3(t testing.TB, env []string, dir string) (string, error) {
	t.Helper()
	if _, err := os.Stat("/usr/lib/python3/dist-packages/boto3"); err != nil {
		testenv.Missing(t, "Debian's python3-boto3", "apt-get install python3-boto3")
	}
	script := `import boto3, botocore
assert botocore.__version__.startswith("1.29."), botocore.__version__
for b in boto3.client("s3", endpoint_url="` + a.m.Endpoint + `").list_buckets()["Buckets"]:
    print(b["Name"])`
	cmd := exec.Command("/usr/bin/python3", "-S", "-c", script)
	cmd.Env, cmd.Dir = append(env, "PYTHONPATH=/usr/lib/python3/dist-packages"), dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A login shell exports the token's value once (profile.sh); Debian's boto3
// and AWS CLI v2.9 read only that value. It must keep working after
// spuff-guest restarts, and the token file stays the owner's alone.
func TestAWSLoginEnvironmentSurvivesGuestRestart(t *testing.T) {
	a := startAWSHost(t)
	g := a.h.Guest(t, "alpha")
	login := a.shedEnv(g) // what the login shell exported, token value included
	if !slices.ContainsFunc(login, func(kv string) bool { return strings.HasPrefix(kv, "AWS_CONTAINER_AUTHORIZATION_TOKEN=") }) {
		t.Fatal("the login environment has no AWS_CONTAINER_AUTHORIZATION_TOKEN")
	}
	if fi, err := os.Stat(filepath.Join(g.RunDir, "aws-token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("aws-token without --socket-group: %v %v, want mode 0600", fi, err)
	}
	check := func(when string) {
		t.Helper()
		if out, err := a.debianBoto3(t, login, g.Dir); err != nil || !strings.Contains(out, "spuff-one") {
			t.Fatalf("Debian's boto3 %s: %v\n%s\nguest:\n%s", when, err, out, g.Log())
		}
		cmd := exec.Command(a.cli, "--endpoint-url", a.m.Endpoint, "s3", "ls")
		cmd.Env, cmd.Dir = login, g.Dir
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "spuff-one") {
			t.Fatalf("the AWS CLI %s: %v\n%s", when, err, out)
		}
		if out, err := a.sdkLS(g); err != nil || !strings.Contains(out, "spuff-one") {
			t.Fatalf("the Go SDK (token file) %s: %v\n%s", when, err, out)
		}
	}
	check("before a restart")
	g.Restart(t)
	a.h.WaitState(t, "alpha", "connected")
	check("after spuff-guest restarted, with the environment exported at login")
}
