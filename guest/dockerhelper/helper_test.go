package dockerhelper_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/guest/dockerhelper"
)

// daemon stands in for the guest daemon's end of guest.sock: it answers
// every request with reply and remembers what it was sent.
type daemon struct {
	reply func(ctx context.Context, r *bus.Request) (any, error)
	mu    sync.Mutex
	seen  []bus.Envelope
}

func (d *daemon) ServeBus(ctx context.Context, r *bus.Request) (any, error) {
	d.mu.Lock()
	d.seen = append(d.seen, r.Envelope)
	d.mu.Unlock()
	return d.reply(ctx, r)
}

func (d *daemon) requests() []bus.Envelope {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]bus.Envelope(nil), d.seen...)
}

// listen serves d on a real unix socket, as the daemon does.
func listen(t *testing.T, d *daemon) *dockerhelper.Helper {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "guest.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			bus.NewConn(c, d, bus.Options{})
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	t.Setenv(dockerhelper.EnvSocket, sock)
	h := dockerhelper.New()
	if h.Socket != sock {
		t.Fatalf("New ignored %s", dockerhelper.EnvSocket)
	}
	return h
}

func run(h credentials.Helper, action, stdin string) (string, error) {
	var out bytes.Buffer
	err := credentials.HandleCommand(h, action, strings.NewReader(stdin), &out)
	return out.String(), err
}

func TestGet(t *testing.T) {
	d := &daemon{reply: func(_ context.Context, r *bus.Request) (any, error) {
		var q bus.DockerGetRequest
		if err := json.Unmarshal(r.Payload, &q); err != nil {
			return nil, err
		}
		switch q.ServerURL {
		case "ok.example":
			return bus.DockerGetResponse{Username: "u", Secret: "s"}, nil
		case "missing.example":
			return nil, bus.Errorf(bus.CodeKeyNotFound, "no login")
		case "outside.example":
			return nil, bus.Errorf(bus.CodeNotAllowed, "not allowlisted")
		case "empty.example":
			return bus.DockerGetResponse{}, nil
		case "denied.example":
			return nil, bus.Errorf(bus.CodeDenied, "no")
		case "slow.example":
			return nil, bus.Errorf(bus.CodeApprovalTimeout, "nobody answered")
		case "down.example":
			return nil, bus.Errorf(bus.CodeHostUnreachable, "host gone")
		case "busy.example":
			return nil, bus.Errorf(bus.CodeRateLimited, "slow down")
		}
		return nil, bus.Errorf(bus.CodeBadRequest, "bad")
	}}
	h := listen(t, d)

	out, err := run(h, "get", "  ok.example\n")
	if err != nil {
		t.Fatal(err)
	}
	var c credentials.Credentials
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.Username != "u" || c.Secret != "s" || c.ServerURL != "ok.example" {
		t.Fatalf("get ok = %q, %v", out, err)
	}
	for _, reg := range []string{"missing.example", "outside.example", "empty.example"} {
		_, err := run(h, "get", reg)
		// credentials.Serve prints err; docker clients compare that text.
		if !credentials.IsErrCredentialsNotFound(err) || !credentials.IsErrCredentialsNotFoundMessage(err.Error()) {
			t.Fatalf("get %s: %v, want the standard not-found", reg, err)
		}
	}
	for reg, want := range map[string]string{
		"denied.example": "refused on your computer",
		"slow.example":   "nobody approved",
		"down.example":   "spuff-app --headless",
		"busy.example":   "too many requests",
		"bad.example":    "BAD_REQUEST",
	} {
		_, err := run(h, "get", reg)
		if err == nil || credentials.IsErrCredentialsNotFound(err) || !strings.Contains(err.Error(), want) {
			t.Fatalf("get %s: %v, want an error saying %q", reg, err, want)
		}
	}
	if _, err := run(h, "get", " \n"); !credentials.IsCredentialsMissingServerURL(err) {
		t.Fatalf("empty get: %v", err)
	}
	for _, e := range d.requests() {
		if e.NS != bus.NSDocker || e.Op != bus.OpGet {
			t.Fatalf("sent %s/%s", e.NS, e.Op)
		}
		if _, err := bus.IDTime(e.ID); err != nil {
			t.Fatalf("request id: %v", err)
		}
	}
	if n := len(d.requests()); n != 9 {
		t.Fatalf("daemon saw %d requests, want 9 (none for the empty one)", n)
	}
}

func TestListStoreErase(t *testing.T) {
	d := &daemon{reply: func(_ context.Context, r *bus.Request) (any, error) {
		switch r.Op {
		case bus.OpList:
			return bus.DockerListResponse{Registries: map[string]string{"ok.example": "u"}}, nil
		default:
			return nil, bus.Errorf(bus.CodeNotAllowed, "read-only")
		}
	}}
	h := listen(t, d)
	out, err := run(h, "list", "")
	if err != nil || strings.TrimSpace(out) != `{"ok.example":"u"}` {
		t.Fatalf("list = %q, %v", out, err)
	}
	_, err = run(h, "store", `{"ServerURL":"ok.example","Username":"me","Secret":"guest-typed-secret"}`)
	if !errors.Is(err, dockerhelper.ErrReadOnly) {
		t.Fatalf("store: %v", err)
	}
	if _, err = run(h, "erase", "ok.example"); !errors.Is(err, dockerhelper.ErrReadOnly) {
		t.Fatalf("erase: %v", err)
	}
	reqs := d.requests()
	if len(reqs) != 3 || reqs[1].Op != bus.OpStore || reqs[2].Op != bus.OpErase {
		t.Fatalf("host heard %+v, want list, store, erase", reqs)
	}
	for _, e := range reqs[1:] {
		if strings.Contains(string(e.Payload), "guest-typed-secret") || strings.Contains(string(e.Payload), "me") {
			t.Fatalf("%s sent more than the registry: %s", e.Op, e.Payload)
		}
		if string(e.Payload) != `{"server_url":"ok.example"}` {
			t.Fatalf("%s payload %s", e.Op, e.Payload)
		}
	}

	// list when the namespace is off for this shed: nothing, not an error.
	d.reply = func(context.Context, *bus.Request) (any, error) {
		return nil, bus.Errorf(bus.CodeNotAllowed, "namespace off")
	}
	if out, err := run(h, "list", ""); err != nil || strings.TrimSpace(out) != `{}` {
		t.Fatalf("list with the namespace off = %q, %v", out, err)
	}
}

func TestUnreachable(t *testing.T) {
	t.Setenv(dockerhelper.EnvSocket, filepath.Join(t.TempDir(), "nobody-home.sock"))
	h := dockerhelper.New()
	_, err := run(h, "get", "ok.example")
	if err == nil || !strings.Contains(err.Error(), "spuff-guest serve") || credentials.IsErrCredentialsNotFound(err) {
		t.Fatalf("get with no daemon: %v", err)
	}
	if _, err := run(h, "list", ""); err == nil || !strings.Contains(err.Error(), "nobody-home.sock") {
		t.Fatalf("list with no daemon: %v", err)
	}
	// Store is refused even when nothing is there to hear of it.
	if _, err := run(h, "store", `{"ServerURL":"a","Username":"b","Secret":"c"}`); !errors.Is(err, dockerhelper.ErrReadOnly) {
		t.Fatalf("store with no daemon: %v", err)
	}

	// A daemon that never answers: the call gives up with advice.
	silent := &daemon{reply: func(ctx context.Context, _ *bus.Request) (any, error) {
		<-ctx.Done() // the guest hung up
		return nil, ctx.Err()
	}}
	h = listen(t, silent)
	h.Bus = bus.Options{CallTimeout: 100 * time.Millisecond, MaxWait: 200 * time.Millisecond}
	_, err = run(h, "get", "ok.example")
	if err == nil || !strings.Contains(err.Error(), "spuff status") {
		t.Fatalf("get from a silent daemon: %v", err)
	}
}

func TestDefaultSocket(t *testing.T) {
	t.Setenv(dockerhelper.EnvSocket, "")
	if h := dockerhelper.New(); h.Socket != "/run/spuff/guest.sock" {
		t.Fatalf("socket %q", h.Socket)
	}
}

// FuzzStdin drives the helper's stdin parsing (credentials.HandleCommand,
// then Get) with arbitrary input: it must never panic, send the host exactly
// the trimmed server URL, and send nothing for blank or oversized input.
func FuzzStdin(f *testing.F) {
	for _, s := range []string{"ghcr.io\n", "https://index.docker.io/v1/", " \n ", "", "a\r\nb", "\x00", strings.Repeat("x", 1025)} {
		f.Add([]byte(s), "get")
	}
	f.Add([]byte(`{"ServerURL":"x","Username":"u","Secret":"s"}`), "store")
	f.Add([]byte("x"), "erase")
	f.Add([]byte(""), "list")
	var mu sync.Mutex
	var last *bus.DockerGetRequest
	host := bus.HandlerFunc(func(_ context.Context, r *bus.Request) (any, error) {
		var q bus.DockerGetRequest
		if len(r.Payload) > 0 {
			if err := json.Unmarshal(r.Payload, &q); err != nil {
				return nil, bus.Errorf(bus.CodeBadRequest, "%v", err)
			}
		}
		mu.Lock()
		last = &q
		mu.Unlock()
		if r.Op == bus.OpList {
			return bus.DockerListResponse{}, nil
		}
		return nil, bus.Errorf(bus.CodeKeyNotFound, "none")
	})
	h := &dockerhelper.Helper{Dial: func(context.Context) (net.Conn, error) {
		g, hs := net.Pipe()
		bus.NewConn(hs, host, bus.Options{})
		return g, nil
	}}
	f.Fuzz(func(t *testing.T, stdin []byte, action string) {
		mu.Lock()
		last = nil
		mu.Unlock()
		var out bytes.Buffer
		err := credentials.HandleCommand(h, action, bytes.NewReader(stdin), &out)
		mu.Lock()
		sent := last
		mu.Unlock()
		switch action {
		case "get":
			url := strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(string(stdin), "\r\n", ""), "\n", ""))
			if sent == nil {
				if err == nil {
					t.Fatalf("get %q succeeded without asking the host", stdin)
				}
				if url != "" && len(url) <= 1024 && utf8.ValidString(url) && len(stdin) < 60000 {
					t.Fatalf("get %q did not reach the host: %v", stdin, err)
				}
				return
			}
			if url == "" || len(url) > 1024 || !utf8.ValidString(url) || sent.ServerURL != url {
				t.Fatalf("get %q sent %q", stdin, sent.ServerURL)
			}
			if !credentials.IsErrCredentialsNotFound(err) {
				t.Fatalf("get: %v, want not found", err)
			}
		case "store", "erase":
			// Whatever stdin says, nothing is stored or erased; what reaches
			// the host is a DockerGetRequest, which has room for no secret.
			if err == nil {
				t.Fatalf("%s %q succeeded", action, stdin)
			}
		}
	})
}
