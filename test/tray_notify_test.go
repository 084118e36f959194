package test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	notesName  = "org.freedesktop.Notifications"
	notesPath  = "/org/freedesktop/Notifications"
	notesIface = "org.freedesktop.Notifications"
)

// noteServer plays the desktop's notification daemon on the tray test's
// private session bus, as a panel's would.
type noteServer struct {
	conn   *dbus.Conn
	posted chan posted

	mu     sync.Mutex
	next   uint32
	closed []uint32
}

type posted struct {
	ID      uint32
	Summary string
	Body    string
	Actions []string
	Urgency any
}

func (s *noteServer) GetCapabilities() ([]string, *dbus.Error) {
	return []string{"actions", "body"}, nil
}

func (s *noteServer) GetServerInformation() (string, string, string, string, *dbus.Error) {
	return "spuff-test", "spuff", "1", "1.2", nil
}

func (s *noteServer) Notify(app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	s.mu.Lock()
	s.next++
	id := s.next
	s.mu.Unlock()
	s.posted <- posted{ID: id, Summary: summary, Body: body, Actions: actions, Urgency: hints["urgency"].Value()}
	return id, nil
}

func (s *noteServer) CloseNotification(id uint32) *dbus.Error {
	s.mu.Lock()
	s.closed = append(s.closed, id)
	s.mu.Unlock()
	if err := s.conn.Emit(notesPath, notesIface+".NotificationClosed", id, uint32(3)); err != nil {
		return dbus.MakeFailedError(err)
	}
	return nil
}

// serveNotifications owns org.freedesktop.Notifications on conn.
func serveNotifications(t *testing.T, conn *dbus.Conn) *noteServer {
	t.Helper()
	s := &noteServer{conn: conn, posted: make(chan posted, 16)}
	if err := conn.Export(s, notesPath, notesIface); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(notesName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning %s: %v %v", notesName, reply, err)
	}
	return s
}

func (s *noteServer) wait(t *testing.T, what string) posted {
	t.Helper()
	select {
	case p := <-s.posted:
		return p
	case <-time.After(20 * time.Second):
		t.Fatalf("no notification %s", what)
		return posted{}
	}
}

func (s *noteServer) click(t *testing.T, id uint32, key string) {
	t.Helper()
	if err := s.conn.Emit(notesPath, notesIface+".ActionInvoked", id, key); err != nil {
		t.Fatal(err)
	}
}

func (s *noteServer) isClosed(id uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.closed {
		if c == id {
			return true
		}
	}
	return false
}

// TestTrayNotificationApprovesARealLogin: a real ssh login waiting for
// approval is posted as an urgent desktop notification with Approve and
// Deny; the desktop's Approve lets ssh in, audited as a tray approval, and
// the answered notification is taken down.
func TestTrayNotificationApprovesARealLogin(t *testing.T) {
	s, tray := startTray(t, approvalConfig("per-request", "30s"))
	sh := s.shed(t, "desk")
	tray.waitFor("the attached shed", labelled("● desk — connected"))

	wait := sh.startSSH(t)
	n := tray.notes.wait(t, "for the login waiting for approval")
	if !strings.Contains(n.Summary+n.Body, "desk") || n.Urgency != byte(2) {
		t.Errorf("notification %+v: want the shed named, urgency 2 (stays until answered)", n)
	}
	if got := strings.Join(n.Actions, ","); got != "approve,Approve,deny,Deny" {
		t.Fatalf("notification actions %q, want Approve and Deny", got)
	}
	tray.notes.click(t, n.ID, "approve")
	loggedInByTray(t, s, "desk", wait)
	for deadline := time.Now().Add(10 * time.Second); !tray.notes.isClosed(n.ID); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the answered request's notification %d was never taken down", n.ID)
		}
	}
}
