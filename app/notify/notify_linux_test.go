package notify

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/spuff-dev/spuff/app/keychain/keychaintest"
)

// server plays a desktop's notification daemon on a private session bus.
type server struct {
	conn  *dbus.Conn
	calls chan []any
	caps  []string
	next  uint32
}

func (s *server) GetCapabilities() ([]string, *dbus.Error) { return s.caps, nil }

func (s *server) Notify(app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	s.next++
	s.calls <- []any{app, replaces, summary, body, actions, hints["urgency"].Value(), timeout}
	return s.next, nil
}

func (s *server) CloseNotification(id uint32) *dbus.Error {
	if err := s.conn.Emit(fdoPath, fdoIface+".NotificationClosed", id, uint32(3)); err != nil {
		return dbus.MakeFailedError(err)
	}
	return nil
}

func startServer(t *testing.T, caps ...string) (*server, string) {
	t.Helper()
	bus := keychaintest.Bus(t)
	conn, err := dbus.Connect(bus.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &server{conn: conn, calls: make(chan []any, 4), caps: caps}
	if err := conn.Export(s, fdoPath, fdoIface); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(fdoName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning %s: %v %v", fdoName, reply, err)
	}
	return s, bus.Addr
}

func TestNotifyWithActions(t *testing.T) {
	srv, addr := startServer(t, "actions", "body")
	n, err := New(Options{AppName: "spuff", BusAddress: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	id, err := n.Notify(ctx, Notification{
		Title:   "desk wants to sign in to <github.com>",
		Body:    "ssh-ed25519 SHA256:abc & more",
		Actions: []Action{{"approve", "Approve"}, {"deny", "Deny"}},
		Urgent:  true,
	})
	if err != nil {
		t.Fatal(err)
	}
	call := <-srv.calls
	if call[0] != "spuff" || call[2] != "desk wants to sign in to &lt;github.com&gt;" || call[3] != "ssh-ed25519 SHA256:abc &amp; more" {
		t.Errorf("the server got %q", call[:4])
	}
	if a := call[4].([]string); strings.Join(a, ",") != "approve,Approve,deny,Deny" {
		t.Errorf("actions = %q", a)
	}
	if call[5] != byte(2) || call[6] != int32(0) {
		t.Errorf("an urgent prompt has urgency %v and timeout %v, want 2 and 0 (stay until answered)", call[5], call[6])
	}
	if err := srv.conn.Emit(fdoPath, fdoIface+".ActionInvoked", id, "approve"); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-n.Events():
		if e.ID != id || e.Key != "approve" {
			t.Errorf("event = %+v, want approve on %d", e, id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the click never arrived")
	}
	if err := n.Dismiss(ctx, id); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-n.Events():
		if e.ID != id || !e.Closed {
			t.Errorf("event = %+v, want closed %d", e, id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the close never arrived")
	}
}

func TestNoActionsWhereTheDesktopHasNone(t *testing.T) {
	srv, addr := startServer(t, "body")
	n, err := New(Options{BusAddress: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Notify(context.Background(), Notification{Title: "t", Body: strings.Repeat("é", 2000), Actions: []Action{{"approve", "Approve"}}}); err != nil {
		t.Fatal(err)
	}
	call := <-srv.calls
	if a := call[4].([]string); len(a) != 0 {
		t.Errorf("actions %q sent to a server without the actions capability", a)
	}
	if b := call[3].(string); len(b) > maxBody+len("…") || !strings.HasSuffix(b, "…") || !utf8Valid(b) {
		t.Errorf("a long body was not cut on a character boundary: %d bytes", len(b))
	}
	if call[5] != byte(1) || call[6] != int32(-1) {
		t.Errorf("a plain notice has urgency %v timeout %v, want 1 and -1", call[5], call[6])
	}
}

func TestNoServiceIsUnavailable(t *testing.T) {
	bus := keychaintest.Bus(t)
	if _, err := New(Options{BusAddress: bus.Addr}); err == nil {
		t.Fatal("New succeeded with no notification service on the bus")
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	if _, err := New(Options{}); err == nil {
		t.Fatal("New succeeded with no session bus")
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
