package notify

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/godbus/dbus/v5"
)

const (
	fdoName  = "org.freedesktop.Notifications"
	fdoPath  = "/org/freedesktop/Notifications"
	fdoIface = "org.freedesktop.Notifications"
)

// fdo speaks the Desktop Notifications Specification over D-Bus.
type fdo struct {
	conn    *dbus.Conn
	app     string
	actions bool
	events  chan Event
	signals chan *dbus.Signal
	done    chan struct{}
	once    sync.Once
}

var _ Notifier = (*fdo)(nil)

func newPlatform(opts Options) (Notifier, error) {
	addr := opts.BusAddress
	if addr == "" {
		addr = os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	}
	if addr == "" {
		return nil, fmt.Errorf("%w: DBUS_SESSION_BUS_ADDRESS is unset", ErrUnavailable)
	}
	conn, err := dbus.Connect(addr)
	if err != nil {
		return nil, fmt.Errorf("notify: connecting to the session bus: %w", err)
	}
	n := &fdo{conn: conn, app: opts.AppName, events: make(chan Event, 16), signals: make(chan *dbus.Signal, 16), done: make(chan struct{})}
	var caps []string
	if err := conn.Object(fdoName, fdoPath).Call(fdoIface+".GetCapabilities", 0).Store(&caps); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	for _, c := range caps {
		if c == "actions" {
			n.actions = true
		}
	}
	for _, member := range []string{"ActionInvoked", "NotificationClosed"} {
		if err := conn.AddMatchSignal(dbus.WithMatchObjectPath(fdoPath), dbus.WithMatchInterface(fdoIface), dbus.WithMatchMember(member)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("notify: watching %s: %w", member, err)
		}
	}
	conn.Signal(n.signals)
	go n.relay()
	return n, nil
}

// relay turns the server's signals into Events; a slow reader loses
// events rather than stalling the bus connection.
func (n *fdo) relay() {
	defer close(n.events)
	for {
		select {
		case <-n.done:
			return
		case s, ok := <-n.signals:
			if !ok {
				return
			}
			var e Event
			switch s.Name {
			case fdoIface + ".ActionInvoked":
				if len(s.Body) != 2 {
					continue
				}
				id, ok1 := s.Body[0].(uint32)
				key, ok2 := s.Body[1].(string)
				if !ok1 || !ok2 {
					continue
				}
				e = Event{ID: id, Key: key}
			case fdoIface + ".NotificationClosed":
				if len(s.Body) < 1 {
					continue
				}
				id, ok := s.Body[0].(uint32)
				if !ok {
					continue
				}
				e = Event{ID: id, Closed: true}
			default:
				continue
			}
			select {
			case n.events <- e:
			default:
			}
		}
	}
}

func (n *fdo) Notify(ctx context.Context, m Notification) (uint32, error) {
	var actions []string
	if n.actions {
		for _, a := range m.Actions {
			actions = append(actions, a.Key, a.Label)
		}
	}
	urgency := byte(1)
	timeout := int32(-1)
	if m.Urgent {
		urgency, timeout = 2, 0
	}
	hints := map[string]dbus.Variant{"urgency": dbus.MakeVariant(urgency)}
	var id uint32
	err := n.conn.Object(fdoName, fdoPath).CallWithContext(ctx, fdoIface+".Notify", 0,
		n.app, m.Replaces, "", plain(m.Title), plain(m.Body), actions, hints, timeout).Store(&id)
	if err != nil {
		return 0, fmt.Errorf("notify: %w", err)
	}
	return id, nil
}

func (n *fdo) Dismiss(ctx context.Context, id uint32) error {
	if err := n.conn.Object(fdoName, fdoPath).CallWithContext(ctx, fdoIface+".CloseNotification", 0, id).Err; err != nil {
		return fmt.Errorf("notify: closing %d: %w", id, err)
	}
	return nil
}

func (n *fdo) Events() <-chan Event { return n.events }

func (n *fdo) Close() error {
	n.once.Do(func() { close(n.done) })
	return n.conn.Close()
}
