package daemon_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/guest/agentapi"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/guest/daemon"
)

// TestOneIdleClock: agent/idle on the bus and the agent API's /idle read
// one clock, moved by a heartbeat, a credential request and login-session
// activity alike.
func TestOneIdleClock(t *testing.T) {
	dir := runDir(t, "idl")
	var login atomic.Int64 // unix nanos; 0 = no session
	d := daemon.New(daemon.Options{RunDir: dir, SocketGID: -1, Logins: func() time.Time {
		if n := login.Load(); n != 0 {
			return time.Unix(0, n)
		}
		return time.Time{}
	}})
	host := runAttached(t, d, dir, bus.HandlerFunc(func(context.Context, *bus.Request) (any, error) {
		return bus.SSHListResponse{}, nil
	}))
	api, err := agentapi.New("tok")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(d))
	t.Cleanup(srv.Close)
	call := func(method, path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// both reads the clock both ways; they must name the same instant.
	both := func(what string) time.Time {
		t.Helper()
		var onBus bus.IdleResponse
		if err := host.Call(context.Background(), bus.NSAgent, bus.OpIdle, nil, &onBus); err != nil {
			t.Fatal(err)
		}
		resp := call("GET", "/idle")
		defer resp.Body.Close()
		var onAPI struct {
			IdleSeconds int64     `json:"idle_seconds"`
			Since       time.Time `json:"since"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&onAPI); err != nil {
			t.Fatal(err)
		}
		if !onBus.Since.Equal(onAPI.Since) || onBus.Seconds < 0 || onAPI.IdleSeconds < 0 {
			t.Fatalf("%s: agent/idle says %+v, /idle says %+v", what, onBus, onAPI)
		}
		return onBus.Since
	}
	start := both("at start")

	time.Sleep(5 * time.Millisecond)
	before := time.Now()
	call("POST", "/heartbeat").Body.Close()
	if got := both("after a heartbeat"); got.Before(before) {
		t.Fatalf("a heartbeat at %s left the clock at %s (start %s)", before, got, start)
	}

	time.Sleep(5 * time.Millisecond)
	before = time.Now()
	if err := d.Call(context.Background(), bus.NSSSHAgent, bus.OpList, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := both("after a credential request"); got.Before(before) {
		t.Fatalf("a request at %s left the clock at %s", before, got)
	}

	typed := time.Now().Add(time.Hour).Truncate(time.Second) // a session newer than anything else
	login.Store(typed.UnixNano())
	if got := both("after login-session activity"); !got.Equal(typed) {
		t.Fatalf("a session active at %s left the clock at %s", typed, got)
	}
}
