package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/helpers/awssts/awsststest"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// credentialGETs times sequential credential GETs of one endpoint, on a
// client of its own whose keep-alive connection lasts between calls, as
// an SDK refreshing its credentials makes them.
type credentialGETs struct {
	c          *http.Client
	url, token string
}

func newCredentialGETs(url, token string) credentialGETs {
	return credentialGETs{c: &http.Client{Timeout: 10 * time.Second}, url: url, token: token}
}

func (g credentialGETs) times(n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		req, _ := http.NewRequest("GET", g.url, nil)
		req.Header.Set("Authorization", g.token)
		start := time.Now()
		resp, err := g.c.Do(req)
		if err != nil {
			return nil, err
		}
		var creds struct{ AccessKeyId string }
		err = json.NewDecoder(resp.Body).Decode(&creds)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil || creds.AccessKeyId == "" {
			return nil, fmt.Errorf("GET %s: %d %v", g.url, resp.StatusCode, err)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// awsVaultECS runs `aws-vault exec --ecs-server` for a profile whose
// credential_process prints creds (a session from MinIO), and returns its
// endpoint URL and token. aws-vault caches what the process printed, so
// every GET after the first is a cache hit, as in spuff's measurement.
func awsVaultECS(b *testing.B, creds []byte) (url, token string) {
	b.Helper()
	bin := testenv.Tool(b, "aws-vault")
	dir := harness.ShortTempDir(b)
	var c struct{ AccessKeyId, SecretAccessKey, Token, Expiration string }
	if err := json.Unmarshal(creds, &c); err != nil {
		b.Fatal(err)
	}
	process, _ := json.Marshal(map[string]any{"Version": 1, "AccessKeyId": c.AccessKeyId, "SecretAccessKey": c.SecretAccessKey, "SessionToken": c.Token, "Expiration": c.Expiration})
	credsFile := filepath.Join(dir, "creds.json")
	if err := os.WriteFile(credsFile, process, 0o600); err != nil {
		b.Fatal(err)
	}
	config := filepath.Join(dir, "config")
	if err := os.WriteFile(config, []byte(fmt.Sprintf("[profile bench]\nregion = %s\ncredential_process = /bin/cat %s\n", awsststest.Region, credsFile)), 0o600); err != nil {
		b.Fatal(err)
	}
	// aws-vault refuses its terminal MFA prompt beside --ecs-server and
	// offers zenity only when it is in PATH. No MFA is involved, so a
	// zenity that fails stands in for the GUI prompt it would never show.
	bindir := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bindir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bindir, "zenity"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+bindir+":"+os.Getenv("PATH"), "HOME="+dir, "AWS_CONFIG_FILE="+config, "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_VAULT_BACKEND=file", "AWS_VAULT_FILE_DIR="+filepath.Join(dir, "keyring"), "AWS_VAULT_FILE_PASSPHRASE="+awsststest.RandomSecret())
	cmd := exec.Command(bin, "exec", "--ecs-server", "--prompt=zenity", "bench", "--", "/bin/sh", "-c",
		`printf '%s\n%s\n' "$AWS_CONTAINER_CREDENTIALS_FULL_URI" "$AWS_CONTAINER_AUTHORIZATION_TOKEN"; exec sleep 3600`)
	cmd.Env = env
	var stderr strings.Builder
	out, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, &stderr
	testenv.MustStartProcess(b, "aws-vault", cmd)
	sc := bufio.NewScanner(out)
	var lines []string
	for len(lines) < 2 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 2 || lines[0] == "" || lines[1] == "" {
		b.Fatalf("aws-vault exec --ecs-server did not start its server: %s", stderr.String())
	}
	return lines[0], lines[1]
}

// BenchmarkAWSCredentialGET: a credential GET on a host cache hit, from
// the shed's endpoint through the bus, the broker (replay guard, rate
// limit, audit line) and awssts — beside the same GET against aws-vault's
// ECS server on its cache hit, interleaved in one run. Both serve a MinIO
// session.
func BenchmarkAWSCredentialGET(b *testing.B) {
	const n = 2000
	a := startAWSHost(b)
	g := a.h.Guest(b, "bench-aws")
	url, tok := "http://"+g.AWSAddr+"/credentials", awsToken(b, g)
	// The first GET assumes the role; the rest are host cache hits.
	code, body := awsGET(b, http.DefaultClient, g, "GET", "/credentials", tok)
	if code != 200 {
		b.Fatalf("first GET: %d %s", code, body)
	}
	avURL, avTok := awsVaultECS(b, body)
	spuff, vault := newCredentialGETs(url, tok), newCredentialGETs(avURL, avTok)
	// aws-vault's first GET fills its cache.
	if _, err := vault.times(1); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	for range b.N {
		d := interleaved(b, n, spuff, vault)
		s50 := testenv.ReportPercentiles(b, "spuff", d[0])
		v50 := testenv.ReportPercentiles(b, "aws-vault", d[1])
		b.ReportMetric(s50/v50, "spuff/aws-vault-p50")
	}
}
