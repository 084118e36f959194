package awsendpoint_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"

	"github.com/spuff-dev/spuff/guest/awsendpoint"
	"github.com/spuff-dev/spuff/guest/bus"
)

// hostStub answers get_credentials as the guest daemon relays the host's
// answer: credentials, or a *bus.Error.
type hostStub struct {
	mu    sync.Mutex
	calls []string
	err   error
	n     int
}

func (h *hostStub) Call(_ context.Context, ns, op string, payload, out any) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, ns+"/"+op)
	if payload != nil {
		return errors.New("the endpoint sent a payload")
	}
	if h.err != nil {
		return h.err
	}
	h.n++
	*out.(*bus.AWSCredentials) = bus.AWSCredentials{
		AccessKeyID:     "ASIASESSION" + string(rune('A'+h.n)),
		SecretAccessKey: "session-secret",
		SessionToken:    "session-token",
		Expiration:      time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	return nil
}

func (h *hostStub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

const token = "test-token-0123456789"

func server(t *testing.T, h *hostStub) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(awsendpoint.NewHandler(h, token, nil))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, auth string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestRefusals(t *testing.T) {
	h := &hostStub{}
	srv := server(t, h)
	for _, tc := range []struct {
		name, method, path, auth string
		want                     int
	}{
		{"no token", "GET", "/credentials", "", 401},
		{"wrong token", "GET", "/credentials", "not-the-token", 401},
		{"token prefix", "GET", "/credentials", token[:len(token)-1], 401},
		{"token plus", "GET", "/credentials", token + "x", 401},
		{"bearer form", "GET", "/credentials", "Bearer " + token, 401},
		{"other path", "GET", "/", token, 404},
		{"sub path", "GET", "/credentials/admin", token, 404},
		{"ecs path", "GET", "/v2/credentials/x", token, 404},
		{"post", "POST", "/credentials", token, 405},
		{"put", "PUT", "/credentials", token, 405},
		{"delete", "DELETE", "/credentials", token, 405},
		{"head", "HEAD", "/credentials", token, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := do(t, tc.method, srv.URL+tc.path, tc.auth)
			if code != tc.want {
				t.Fatalf("%s %s: %d, want %d (%s)", tc.method, tc.path, code, tc.want, body)
			}
			if tc.want == 405 && hdr.Get("Allow") != "GET" {
				t.Errorf("405 without Allow: GET")
			}
			if strings.Contains(body, "session-secret") {
				t.Errorf("a refused request got credentials")
			}
		})
	}
	if n := h.count(); n != 0 {
		t.Errorf("refused requests reached the host %d times", n)
	}
}

func TestEmptyTokenRefusesEverything(t *testing.T) {
	h := &hostStub{}
	srv := httptest.NewServer(awsendpoint.NewHandler(h, "", nil))
	defer srv.Close()
	for _, auth := range []string{"", " ", "x"} {
		if code, _, _ := do(t, "GET", srv.URL+"/credentials", auth); code != 401 {
			t.Errorf("Authorization %q with no token configured: %d, want 401", auth, code)
		}
	}
}

func TestBodyShape(t *testing.T) {
	h := &hostStub{}
	srv := server(t, h)
	code, hdr, body := do(t, "GET", srv.URL+"/credentials", token)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"AccessKeyId": "ASIASESSIONB", "SecretAccessKey": "session-secret", "Token": "session-token", "Expiration": "2030-01-02T03:04:05Z"}
	if len(got) != len(want) {
		t.Errorf("body has fields %v, want exactly %v", keys(got), keys(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if hdr.Get("Content-Type") != "application/json" || hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", hdr)
	}
	if h.calls[0] != bus.NSAWS+"/"+bus.OpGetCredentials {
		t.Errorf("host asked %q", h.calls[0])
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestSDKEndpointProvider points the real aws-sdk-go-v2 container provider
// at the endpoint, with the token as an SDK reads it from a file.
func TestSDKEndpointProvider(t *testing.T) {
	h := &hostStub{}
	srv := server(t, h)
	tokenFile := filepath.Join(t.TempDir(), "aws-token")
	if err := awsendpoint.WriteToken(tokenFile, token, -1); err != nil {
		t.Fatal(err)
	}
	p := endpointcreds.New(srv.URL+"/credentials", func(o *endpointcreds.Options) {
		o.AuthorizationTokenProvider = endpointcreds.TokenProviderFunc(func() (string, error) {
			b, err := os.ReadFile(tokenFile)
			return string(b), err
		})
	})
	c, err := p.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessKeyID != "ASIASESSIONB" || c.SecretAccessKey != "session-secret" || c.SessionToken != "session-token" {
		t.Errorf("SDK read %q / secret ok %t / token ok %t", c.AccessKeyID, c.SecretAccessKey == "session-secret", c.SessionToken == "session-token")
	}
	if !c.CanExpire || !c.Expires.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("SDK expiry %v (can expire %t)", c.Expires, c.CanExpire)
	}
	// No caching in the shed: every retrieval asks the host.
	if _, err := p.Retrieve(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := h.count(); n != 2 {
		t.Errorf("two retrievals asked the host %d times", n)
	}

	t.Run("wrong token", func(t *testing.T) {
		p := endpointcreds.New(srv.URL+"/credentials", func(o *endpointcreds.Options) { o.AuthorizationToken = "nope" })
		if _, err := p.Retrieve(context.Background()); err == nil {
			t.Error("the SDK got credentials with a wrong token")
		}
	})
}

// TestSDKEnvironment resolves credentials the way a program in a shed
// does: the default chain, from the two environment variables alone.
func TestSDKEnvironment(t *testing.T) {
	h := &hostStub{}
	srv := server(t, h)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "aws-token")
	if err := awsendpoint.WriteToken(tokenFile, token, -1); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", srv.URL+"/credentials")
	t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tokenFile)
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessKeyID != "ASIASESSIONB" {
		t.Errorf("default chain resolved %q", c.AccessKeyID)
	}
}

func TestHostErrors(t *testing.T) {
	for _, tc := range []struct {
		err      error
		status   int
		code     string
		inHint   string
		inSDKErr string
	}{
		{bus.Errorf(bus.CodeNotAllowed, "no AWS role is configured for shed %q", "a"), 403, bus.CodeNotAllowed, "sheds.NAME.aws.role", "no AWS role is configured"},
		{bus.Errorf(bus.CodeDenied, "denied on your computer"), 403, bus.CodeDenied, "approve", "denied on your computer"},
		{bus.Errorf(bus.CodeUpstream, "assuming role r failed on your computer: AccessDenied"), 503, bus.CodeUpstream, "spuff audit", "AccessDenied"},
		{bus.Errorf(bus.CodeHostUnreachable, "spuff is not running on your computer — start it with `spuff-app --headless`"), 503, bus.CodeHostUnreachable, "spuff list", "spuff-app --headless"},
		{bus.Errorf(bus.CodeRateLimited, "over its rate"), 429, bus.CodeRateLimited, "retries", "over its rate"},
		{errors.New("connection reset"), 503, bus.CodeHostUnreachable, "spuff list", "connection reset"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			h := &hostStub{err: tc.err}
			srv := server(t, h)
			code, hdr, body := do(t, "GET", srv.URL+"/credentials", token)
			if code != tc.status {
				t.Fatalf("status %d, want %d (%s)", code, tc.status, body)
			}
			var p struct{ Code, Message, Hint string }
			if err := json.Unmarshal([]byte(body), &p); err != nil || hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("body %q is not JSON: %v", body, err)
			}
			if p.Code != tc.code || p.Message == "" || !strings.Contains(p.Hint, tc.inHint) {
				t.Errorf("body %+v", p)
			}
			// What a Go program in the shed sees.
			sdk := endpointcreds.New(srv.URL+"/credentials", func(o *endpointcreds.Options) {
				o.AuthorizationToken = token
				o.Retryer = aws.NopRetryer{}
			})
			_, err := sdk.Retrieve(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.inSDKErr) {
				t.Errorf("SDK error %v does not carry %q", err, tc.inSDKErr)
			}
		})
	}
}

func TestWriteToken(t *testing.T) {
	tok, err := awsendpoint.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := awsendpoint.NewToken()
	if len(tok) != 43 || strings.ContainsAny(tok, "+/=\r\n") || tok == other {
		t.Errorf("token of %d chars, url-safe %t, fresh %t", len(tok), !strings.ContainsAny(tok, "+/=\r\n"), tok != other)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "aws-token")
	if err := os.WriteFile(p, []byte("old"), 0o666); err != nil {
		t.Fatal(err)
	}
	gid := os.Getgid()
	if err := awsendpoint.WriteToken(p, tok, gid); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Gid) != gid {
		t.Errorf("group %d, want %d", st.Gid, gid)
	}
	if b, _ := os.ReadFile(p); string(b) != tok {
		t.Errorf("the file does not hold exactly the token")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".aws-token-*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
	// With no socket group the token is the owner's alone.
	if err := awsendpoint.WriteToken(p, tok, -1); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("without a group: mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if err := awsendpoint.WriteToken(filepath.Join(dir, "missing", "aws-token"), tok, -1); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func TestListenLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "10.0.0.1:0", "192.168.1.10:0", "169.254.170.2:0", "example.com:0", "127.0.0.1", ""} {
		if l, err := awsendpoint.Listen(addr); err == nil {
			l.Close()
			t.Errorf("Listen(%q) succeeded", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "127.0.0.2:0"} {
		l, err := awsendpoint.Listen(addr)
		if err != nil {
			t.Errorf("Listen(%q): %v", addr, err)
			continue
		}
		if ip := l.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
			t.Errorf("Listen(%q) bound %v", addr, ip)
		}
		l.Close()
	}
	if l, err := net.Listen("tcp", "[::1]:0"); err == nil {
		l.Close()
		l, err := awsendpoint.Listen("[::1]:0")
		if err != nil {
			t.Errorf("Listen([::1]:0): %v", err)
		} else {
			l.Close()
		}
	}
}

func TestServe(t *testing.T) {
	h := &hostStub{}
	l, err := awsendpoint.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- awsendpoint.Serve(ctx, l, awsendpoint.NewHandler(h, token, nil)) }()
	url := awsendpoint.URL(l.Addr().String())
	if code, _, body := do(t, "GET", url, token); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Error("the listener is still open")
	}
}

func TestKeepToken(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "aws-token")
	first, err := awsendpoint.KeepToken(p)
	if err != nil || len(first) != 43 {
		t.Fatalf("no file: %q, %v", first, err)
	}
	if err := awsendpoint.WriteToken(p, first, -1); err != nil {
		t.Fatal(err)
	}
	if again, _ := awsendpoint.KeepToken(p); again != first {
		t.Fatal("a token this daemon wrote was not kept")
	}
	for name, spoil := range map[string]func(){
		"group-writable": func() { os.Chmod(p, 0o620) },
		"not a token":    func() { os.WriteFile(p, []byte("short\n"), 0o600) },
		"a symlink": func() {
			other := filepath.Join(dir, "other")
			os.WriteFile(other, []byte(first), 0o600)
			os.Remove(p)
			os.Symlink(other, p)
		},
	} {
		if err := awsendpoint.WriteToken(p, first, -1); err != nil {
			os.Remove(p)
			awsendpoint.WriteToken(p, first, -1)
		}
		spoil()
		if got, _ := awsendpoint.KeepToken(p); got == first || len(got) != 43 {
			t.Errorf("%s: kept %q, want a fresh token", name, got)
		}
		os.Remove(p)
	}
}
