package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/app/keychain/keychaintest"
	"github.com/spuff-dev/spuff/test/harness"
)

// The tray is tested the way a Linux desktop sees it: spuff-app (not
// headless) on a private D-Bus session registers a StatusNotifierItem with
// the test, which plays the panel's StatusNotifierWatcher, reads the menu
// over com.canonical.dbusmenu and clicks its items.

// watcher is the panel's side of the StatusNotifier protocol.
type watcher struct{ items chan string }

// RegisterStatusNotifierItem is org.kde.StatusNotifierWatcher's method; the
// item's bus name is the caller's.
func (w *watcher) RegisterStatusNotifierItem(sender dbus.Sender, _ string) *dbus.Error {
	w.items <- string(sender)
	return nil
}

type menuEntry struct {
	ID       int32
	Label    string
	Enabled  bool
	Checked  bool
	Children []menuEntry
}

func (e menuEntry) find(match func(menuEntry) bool) (menuEntry, bool) {
	if match(e) {
		return e, true
	}
	for _, c := range e.Children {
		if f, ok := c.find(match); ok {
			return f, true
		}
	}
	return menuEntry{}, false
}

func (e menuEntry) String() string {
	var b strings.Builder
	var walk func(e menuEntry, depth int)
	walk = func(e menuEntry, depth int) {
		if depth > 0 {
			fmt.Fprintf(&b, "%s%q (id %d, enabled %t)\n", strings.Repeat("  ", depth-1), e.Label, e.ID, e.Enabled)
		}
		for _, c := range e.Children {
			walk(c, depth+1)
		}
	}
	walk(e, 0)
	return b.String()
}

// parseLayout reads dbusmenu's (ia{sv}av) layout node.
func parseLayout(v any) (menuEntry, error) {
	fields, ok := v.([]any)
	if !ok || len(fields) != 3 {
		return menuEntry{}, fmt.Errorf("layout node %T %v is not (ia{sv}av)", v, v)
	}
	id, ok1 := fields[0].(int32)
	props, ok2 := fields[1].(map[string]dbus.Variant)
	children, ok3 := fields[2].([]dbus.Variant)
	if !ok1 || !ok2 || !ok3 {
		return menuEntry{}, fmt.Errorf("layout node has types %T %T %T", fields[0], fields[1], fields[2])
	}
	e := menuEntry{ID: id, Enabled: true}
	if l, ok := props["label"].Value().(string); ok {
		e.Label = l
	}
	if en, ok := props["enabled"].Value().(bool); ok {
		e.Enabled = en
	}
	if ts, ok := props["toggle-state"].Value().(int32); ok {
		e.Checked = ts == 1
	}
	for _, c := range children {
		ce, err := parseLayout(c.Value())
		if err != nil {
			return menuEntry{}, err
		}
		e.Children = append(e.Children, ce)
	}
	return e, nil
}

type trayClient struct {
	t     *testing.T
	menu  dbus.BusObject
	item  dbus.BusObject // the StatusNotifierItem
	notes *noteServer    // the desktop's notification daemon
}

// iconPixmap reads the item's IconPixmap, a(iiay) of ARGB32 images, as the
// panel draws it, and returns its largest image's size and how many of its
// pixels are not transparent.
func (c *trayClient) iconPixmap() (w, h int32, drawn int, err error) {
	v, err := c.item.GetProperty("org.kde.StatusNotifierItem.IconPixmap")
	if err != nil {
		return 0, 0, 0, err
	}
	var images []struct {
		W, H int32
		Data []byte
	}
	if err := dbus.Store([]any{v.Value()}, &images); err != nil {
		return 0, 0, 0, fmt.Errorf("IconPixmap %v: %w", v.Signature(), err)
	}
	for _, im := range images {
		if im.W*im.H <= w*h {
			continue
		}
		w, h, drawn = im.W, im.H, 0
		for i := 0; i+3 < len(im.Data); i += 4 {
			if im.Data[i] != 0 { // ARGB in network order: alpha first
				drawn++
			}
		}
	}
	return w, h, drawn, nil
}

func (c *trayClient) layout() (menuEntry, error) {
	var rev uint32
	var root []any
	call := c.menu.Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{})
	if call.Err != nil {
		return menuEntry{}, call.Err
	}
	if err := call.Store(&rev, &root); err != nil {
		return menuEntry{}, err
	}
	return parseLayout(root)
}

// waitFor polls the menu until match finds an entry.
func (c *trayClient) waitFor(what string, match func(menuEntry) bool) menuEntry {
	c.t.Helper()
	e, _ := c.poll(what, match, 100*time.Millisecond)
	return e
}

// poll reads the menu every interval until match finds an entry, and
// returns it with the time the menu was first seen showing it.
func (c *trayClient) poll(what string, match func(menuEntry) bool, interval time.Duration) (menuEntry, time.Time) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last menuEntry
	var err error
	for time.Now().Before(deadline) {
		asked := time.Now()
		if last, err = c.layout(); err == nil {
			if e, ok := last.find(match); ok {
				return e, asked
			}
		}
		time.Sleep(interval)
	}
	c.t.Fatalf("the tray menu never showed %s (last error %v); it shows:\n%s", what, err, last)
	return menuEntry{}, time.Time{}
}

func (c *trayClient) click(e menuEntry) {
	c.t.Helper()
	call := c.menu.Call("com.canonical.dbusmenu.Event", 0, e.ID, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix()))
	if call.Err != nil {
		c.t.Fatalf("clicking %q: %v", e.Label, call.Err)
	}
}

// loggedInByTray waits for the ssh login to shed and checks that the audit
// log has its sign approved by the tray.
func loggedInByTray(t *testing.T, s *sshHost, shed string, wait func() (string, error)) {
	t.Helper()
	out, err := wait()
	if err != nil || !strings.Contains(out, "logged-in") {
		t.Fatalf("ssh after the tray's Approve: %v: %s\nspuff-app log:\n%s", err, out, s.h.Log())
	}
	var byTray bool
	for _, r := range s.h.FindAudit(t, loginSigns(shed)) {
		byTray = byTray || (r.Result == "ok" && r.Approval == "tray")
	}
	if !byTray {
		t.Fatalf("no ok sign approved by tray in the audit log: %+v", s.h.FindAudit(t, loginSigns(shed)))
	}
}

func labelled(prefix string) func(menuEntry) bool {
	return func(e menuEntry) bool { return strings.HasPrefix(e.Label, prefix) }
}

// startTray starts the SSH host with its tray on a private session bus, on
// which the test also plays the desktop's notification daemon, and returns
// a client for the menu it registers.
func startTray(t *testing.T, extraConfig string) (*sshHost, *trayClient) {
	t.Helper()
	return startTrayEnv(t, extraConfig, nil)
}

// startTrayEnv is startTray with more of spuff-app's environment.
func startTrayEnv(t *testing.T, extraConfig string, env map[string]string) (*sshHost, *trayClient) {
	t.Helper()
	bus := keychaintest.Bus(t)
	conn, err := dbus.Connect(bus.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	w := &watcher{items: make(chan string, 4)}
	if err := conn.Export(w, "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName("org.kde.StatusNotifierWatcher", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning the watcher name: %v %v", reply, err)
	}
	notes := serveNotifications(t, conn)
	appEnv := map[string]string{"DBUS_SESSION_BUS_ADDRESS": bus.Addr}
	for k, v := range env {
		appEnv[k] = v
	}
	s := startSSHHostOpts(t, extraConfig, harness.Options{Tray: true, Env: appEnv})
	var item string
	select {
	case item = <-w.items:
	case <-s.h.Exited():
		t.Fatalf("spuff-app exited:\n%s", s.h.Log())
	case <-time.After(20 * time.Second):
		t.Fatalf("spuff-app registered no tray item\n%s", s.h.Log())
	}
	if strings.Contains(s.h.Log(), "running headless") {
		t.Fatalf("spuff-app fell back to headless:\n%s", s.h.Log())
	}
	return s, &trayClient{t: t, menu: conn.Object(item, "/StatusNotifierItem/menu"), item: conn.Object(item, "/StatusNotifierItem"), notes: notes}
}

// TestTrayListsShedsAndApprovesARealLogin: the item has an icon, the menu
// lists an attached shed, shows its ssh login waiting for approval, and a
// click on Approve lets the real ssh in, audited as a tray approval.
// Disconnect detaches the shed, Start at login writes and removes the
// autostart entry, and Quit ends spuff-app. The broker stays up through every rebuild of the menu.
func TestTrayListsShedsAndApprovesARealLogin(t *testing.T) {
	s, tray := startTray(t, approvalConfig("per-request", "30s"))
	tray.waitFor("the empty state", labelled("No sheds attached"))
	// The panel has an icon to draw, not a blank square.
	if w, h, drawn, err := tray.iconPixmap(); err != nil || w < 16 || h < 16 || drawn < int(w*h)/4 {
		t.Fatalf("the tray item's IconPixmap is %dx%d with %d pixels drawn (%v); the panel would show a blank square", w, h, drawn, err)
	}

	sh := s.shed(t, "desk")
	tray.waitFor("the attached shed", labelled("● desk — connected"))

	wait := sh.startSSH(t)
	pending, shown := tray.poll("the login waiting for approval", func(e menuEntry) bool {
		return strings.HasPrefix(e.Label, "⚠ ") && strings.Contains(e.Label, "desk")
	}, 5*time.Millisecond)
	// The menu is redrawn on the approval event, not on a timer: the
	// question shows within 300ms of being asked.
	var asked []api.PendingItem
	if err := json.Unmarshal([]byte(s.h.MustSpuff(t, "pending", "--json")), &asked); err != nil || len(asked) != 1 {
		t.Fatalf("spuff pending --json: %v %+v", err, asked)
	}
	if lag := shown.Sub(asked[0].Since); lag > 300*time.Millisecond {
		t.Fatalf("the tray showed the pending login %s after it was asked, want within 300ms (redrawn by its event)", lag)
	}
	approve, ok := pending.find(labelled("Approve"))
	if !ok {
		// The first layout after a rebuild stops at depth 1; ask again.
		pending = tray.waitFor("Approve under the pending login", func(e menuEntry) bool {
			_, ok := e.find(labelled("Approve"))
			return strings.HasPrefix(e.Label, "⚠ ") && ok
		})
		approve, _ = pending.find(labelled("Approve"))
	}
	tray.click(approve)
	loggedInByTray(t, s, "desk", wait)
	tray.waitFor("the shed once nothing waits", func(e menuEntry) bool {
		return strings.HasPrefix(e.Label, "● desk") && len(e.Children) > 0
	})
	if l, _ := tray.layout(); strings.Contains(l.String(), "⚠") {
		t.Fatalf("the answered request is still in the menu:\n%s", l)
	}

	shed := tray.waitFor("Disconnect under the shed", func(e menuEntry) bool {
		_, ok := e.find(labelled("Disconnect"))
		return strings.HasPrefix(e.Label, "● desk") && ok
	})
	disconnect, _ := shed.find(labelled("Disconnect"))
	tray.click(disconnect)
	tray.waitFor("the empty state after Disconnect", labelled("No sheds attached"))
	var sheds []api.Attachment
	if err := json.Unmarshal([]byte(s.h.MustSpuff(t, "list", "--json")), &sheds); err != nil {
		t.Fatal(err)
	}
	if len(sheds) != 0 {
		t.Fatalf("after Disconnect spuff list shows %+v", sheds)
	}

	entry := filepath.Join(s.h.Dir, ".config", "autostart", "spuff.desktop")
	auto := tray.waitFor("Start at login, off", func(e menuEntry) bool { return e.Label == "Start at login" && !e.Checked })
	tray.click(auto)
	tray.waitFor("Start at login, checked", func(e menuEntry) bool { return e.Label == "Start at login" && e.Checked })
	if b, err := os.ReadFile(entry); err != nil || !strings.Contains(string(b), "spuff-app") {
		t.Fatalf("Start at login wrote no entry for spuff-app: %v %s", err, b)
	}
	tray.click(tray.waitFor("Start at login, checked", func(e menuEntry) bool { return e.Label == "Start at login" && e.Checked }))
	tray.waitFor("Start at login, off again", func(e menuEntry) bool { return e.Label == "Start at login" && !e.Checked })
	if _, err := os.Stat(entry); !os.IsNotExist(err) {
		t.Fatalf("unchecking Start at login left %s: %v", entry, err)
	}

	tray.click(tray.waitFor("Quit", labelled("Quit spuff")))
	select {
	case <-s.h.Exited():
	case <-time.After(10 * time.Second):
		t.Fatalf("spuff-app still runs after Quit:\n%s", s.h.Log())
	}
}
