package agentapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

type src struct{}

func (src) StatusJSON() any      { return map[string]bool{"host_connected": true} }
func (src) MetricsJSON() any     { return map[string]int{"requests": 3} }
func (src) IdleSince() time.Time { return time.Now().Add(-time.Minute) }
func (src) Heartbeat()           {}

func TestNoTokenRefusesToStart(t *testing.T) {
	for _, tok := range []string{"", "   "} {
		if _, err := New(tok); err == nil {
			t.Fatalf("started with token %q", tok)
		}
	}
}

func TestTokenOnEveryRouteButHealth(t *testing.T) {
	a, err := New("s3cret-token")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler(src{}))
	defer srv.Close()
	do := func(method, path, auth string) int {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := do("GET", "/health", ""); c != 200 {
		t.Fatalf("/health without token: %d", c)
	}
	for _, r := range []struct{ m, p string }{{"GET", "/status"}, {"GET", "/metrics"}, {"GET", "/idle"}, {"POST", "/heartbeat"}} {
		for _, bad := range []string{"", "Bearer wrong", "s3cret-toke", "Bearer s3cret-token2"} {
			if c := do(r.m, r.p, bad); c != http.StatusUnauthorized {
				t.Errorf("%s %s with %q: %d, want 401", r.m, r.p, bad, c)
			}
		}
		if c := do(r.m, r.p, "Bearer s3cret-token"); c/100 != 2 {
			t.Errorf("%s %s with the token: %d", r.m, r.p, c)
		}
	}
}

func TestListenLoopbackOnly(t *testing.T) {
	for _, bad := range []string{"0.0.0.0:0", ":0", "10.0.0.1:7575", "example.com:7575"} {
		if l, err := Listen(bad); err == nil {
			l.Close()
			t.Errorf("Listen(%q) accepted a non-loopback address", bad)
		}
	}
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}
