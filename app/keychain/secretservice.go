package keychain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	ssName       = "org.freedesktop.secrets"
	ssPath       = dbus.ObjectPath("/org/freedesktop/secrets")
	ssService    = "org.freedesktop.Secret.Service"
	ssCollection = "org.freedesktop.Secret.Collection"
	ssItem       = "org.freedesktop.Secret.Item"
	ssPrompt     = "org.freedesktop.Secret.Prompt"
	noPrompt     = dbus.ObjectPath("/")
)

// ssSecret is the Secret Service's (oayays) secret struct.
type ssSecret struct {
	Session     dbus.ObjectPath
	Parameters  []byte
	Value       []byte
	ContentType string
}

// SecretService is a Store on the freedesktop Secret Service (gnome-keyring,
// KWallet, KeePassXC) reached over a D-Bus session bus. Items live in the
// default collection with the attributes service=dev.spuff and key=KEY, so
// `secret-tool lookup service dev.spuff key KEY` finds them too.
type SecretService struct {
	addr string
	log  *slog.Logger
	// CallTimeout bounds each D-Bus call; PromptTimeout bounds waiting for
	// the user to unlock the keyring when it is locked.
	CallTimeout   time.Duration
	PromptTimeout time.Duration

	mu sync.Mutex
	c  *ssConn // nil until connected, and again after the connection broke
}

var _ Store = (*SecretService)(nil)

// ssConn is one connection with its open session.
type ssConn struct {
	conn *dbus.Conn
	sess dbus.ObjectPath
	key  []byte // AES key of an encrypted session; nil for "plain"
	coll dbus.ObjectPath
}

// NewSecretService connects to the session bus at addr and checks that a
// Secret Service answers there with a default collection. It fails, rather
// than waits, when nobody does.
func NewSecretService(addr string, log *slog.Logger) (*SecretService, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &SecretService{addr: addr, log: log, CallTimeout: 10 * time.Second, PromptTimeout: 2 * time.Minute}
	if _, err := s.client(); err != nil {
		return nil, err
	}
	return s, nil
}

// Close drops the connection; the store reconnects on next use.
func (s *SecretService) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil {
		return nil
	}
	err := s.c.conn.Close()
	s.c = nil
	return err
}

func (s *SecretService) client() (*ssConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil && s.c.conn.Connected() {
		return s.c, nil
	}
	c, err := s.connect()
	if err != nil {
		return nil, err
	}
	s.c = c
	return c, nil
}

func (s *SecretService) connect() (*ssConn, error) {
	if s.addr == "" {
		return nil, errors.New("keychain: no D-Bus session bus")
	}
	conn, err := dbus.Connect(s.addr)
	if err != nil {
		return nil, fmt.Errorf("keychain: connecting to the session bus: %w", err)
	}
	c := &ssConn{conn: conn}
	if err := s.openSession(c); err != nil {
		conn.Close()
		return nil, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := conn.Object(ssName, ssPath).CallWithContext(ctx, ssService+".ReadAlias", 0, "default").Store(&c.coll); err != nil {
		conn.Close()
		return nil, fmt.Errorf("keychain: finding the default collection: %w", err)
	}
	if c.coll == noPrompt {
		conn.Close()
		return nil, errors.New("keychain: the secret service has no default collection")
	}
	if v, err := conn.Object(ssName, c.coll).GetProperty(ssCollection + ".Locked"); err == nil && v.Value() == true {
		s.log.Info("keychain: the default keyring is locked; it will be unlocked (with its own prompt) when first needed")
	}
	return c, nil
}

func (s *SecretService) openSession(c *ssConn) error {
	k, err := newDHKey()
	if err != nil {
		return fmt.Errorf("keychain: session key: %w", err)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	svc := c.conn.Object(ssName, ssPath)
	var out dbus.Variant
	err = svc.CallWithContext(ctx, ssService+".OpenSession", 0, dhAlgorithm, dbus.MakeVariant(k.pub)).Store(&out, &c.sess)
	if err == nil {
		peer, ok := out.Value().([]byte)
		if !ok {
			return errors.New("keychain: secret service sent no session key")
		}
		c.key, err = k.aesKey(peer)
		return err
	}
	var de dbus.Error
	if !errors.As(err, &de) || de.Name != "org.freedesktop.DBus.Error.NotSupported" {
		return fmt.Errorf("keychain: opening a secret service session: %w", err)
	}
	// A service without encrypted sessions still beats a file on disk.
	s.log.Warn("keychain: secret service offers no encrypted session; secrets cross the session bus in the clear")
	ctx2, cancel2 := s.ctx()
	defer cancel2()
	if err := svc.CallWithContext(ctx2, ssService+".OpenSession", 0, "plain", dbus.MakeVariant("")).Store(&out, &c.sess); err != nil {
		return fmt.Errorf("keychain: opening a secret service session: %w", err)
	}
	return nil
}

func (s *SecretService) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.CallTimeout)
}

// do runs f on a live connection, reconnecting once when the old connection
// or session went away (the daemon restarted, the bus dropped us).
func (s *SecretService) do(f func(c *ssConn) error) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	err = f(c)
	if err == nil || !stale(c, err) {
		return err
	}
	s.mu.Lock()
	if s.c == c {
		c.conn.Close()
		s.c = nil
	}
	s.mu.Unlock()
	if c, err = s.client(); err != nil {
		return err
	}
	return f(c)
}

func stale(c *ssConn, err error) bool {
	if !c.conn.Connected() {
		return true
	}
	var de dbus.Error
	if errors.As(err, &de) {
		switch de.Name {
		case "org.freedesktop.DBus.Error.ServiceUnknown",
			"org.freedesktop.DBus.Error.UnknownObject",
			"org.freedesktop.DBus.Error.NoReply",
			"org.freedesktop.Secret.Error.NoSession",
			"org.freedesktop.Secret.Error.NoSuchObject":
			return true
		}
	}
	return false
}

func attrs(key string) map[string]string {
	return map[string]string{"service": Service, "key": key}
}

func (s *SecretService) Get(key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var val []byte
	err := s.do(func(c *ssConn) error {
		items, err := s.search(c, key)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return ErrNotFound
		}
		if err := s.unlock(c, items[:1]); err != nil {
			return err
		}
		ctx, cancel := s.ctx()
		defer cancel()
		var sec ssSecret
		if err := c.conn.Object(ssName, items[0]).CallWithContext(ctx, ssItem+".GetSecret", 0, c.sess).Store(&sec); err != nil {
			return fmt.Errorf("keychain: reading %s: %w", key, err)
		}
		if c.key == nil {
			val = sec.Value
			return nil
		}
		val, err = open(c.key, sec.Parameters, sec.Value)
		return err
	})
	return val, err
}

func (s *SecretService) Set(key string, val []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return s.do(func(c *ssConn) error {
		sec := ssSecret{Session: c.sess, Value: val, ContentType: "application/octet-stream"}
		if c.key != nil {
			iv, ct, err := seal(c.key, val)
			if err != nil {
				return fmt.Errorf("keychain: encrypting %s: %w", key, err)
			}
			sec.Parameters, sec.Value = iv, ct
		}
		if err := s.unlock(c, []dbus.ObjectPath{c.coll}); err != nil {
			return err
		}
		props := map[string]dbus.Variant{
			"org.freedesktop.Secret.Item.Label":      dbus.MakeVariant("spuff: " + key),
			"org.freedesktop.Secret.Item.Attributes": dbus.MakeVariant(attrs(key)),
		}
		ctx, cancel := s.ctx()
		defer cancel()
		var item, prompt dbus.ObjectPath
		// replace=true: an item with the same attributes is overwritten, not duplicated.
		if err := c.conn.Object(ssName, c.coll).CallWithContext(ctx, ssCollection+".CreateItem", 0, props, sec, true).Store(&item, &prompt); err != nil {
			return fmt.Errorf("keychain: writing %s: %w", key, err)
		}
		if _, err := s.prompt(c, prompt); err != nil {
			return fmt.Errorf("keychain: writing %s: %w", key, err)
		}
		return nil
	})
}

func (s *SecretService) Delete(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return s.do(func(c *ssConn) error {
		items, err := s.search(c, key)
		if err != nil || len(items) == 0 {
			return err
		}
		if err := s.unlock(c, items); err != nil {
			return err
		}
		for _, it := range items {
			ctx, cancel := s.ctx()
			var prompt dbus.ObjectPath
			err := c.conn.Object(ssName, it).CallWithContext(ctx, ssItem+".Delete", 0).Store(&prompt)
			cancel()
			if err != nil {
				return fmt.Errorf("keychain: deleting %s: %w", key, err)
			}
			if _, err := s.prompt(c, prompt); err != nil {
				return fmt.Errorf("keychain: deleting %s: %w", key, err)
			}
		}
		return nil
	})
}

func (s *SecretService) search(c *ssConn, key string) ([]dbus.ObjectPath, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var items []dbus.ObjectPath
	if err := c.conn.Object(ssName, c.coll).CallWithContext(ctx, ssCollection+".SearchItems", 0, attrs(key)).Store(&items); err != nil {
		return nil, fmt.Errorf("keychain: looking up %s: %w", key, err)
	}
	return items, nil
}

// unlock asks the service to unlock objects; when the keyring is locked the
// service shows its own password dialog and we wait for it.
func (s *SecretService) unlock(c *ssConn, objs []dbus.ObjectPath) error {
	ctx, cancel := s.ctx()
	defer cancel()
	var unlocked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	if err := c.conn.Object(ssName, ssPath).CallWithContext(ctx, ssService+".Unlock", 0, objs).Store(&unlocked, &prompt); err != nil {
		return fmt.Errorf("keychain: unlocking the keyring: %w", err)
	}
	if _, err := s.prompt(c, prompt); err != nil {
		return fmt.Errorf("keychain: unlocking the keyring: %w", err)
	}
	return nil
}

// prompt runs a Secret Service prompt and waits for its Completed signal.
func (s *SecretService) prompt(c *ssConn, p dbus.ObjectPath) (dbus.Variant, error) {
	if p == noPrompt || p == "" {
		return dbus.Variant{}, nil
	}
	match := []dbus.MatchOption{dbus.WithMatchObjectPath(p), dbus.WithMatchInterface(ssPrompt), dbus.WithMatchMember("Completed")}
	if err := c.conn.AddMatchSignal(match...); err != nil {
		return dbus.Variant{}, err
	}
	defer c.conn.RemoveMatchSignal(match...)
	ch := make(chan *dbus.Signal, 4)
	c.conn.Signal(ch)
	defer c.conn.RemoveSignal(ch)

	ctx, cancel := s.ctx()
	err := c.conn.Object(ssName, p).CallWithContext(ctx, ssPrompt+".Prompt", 0, "").Err
	cancel()
	if err != nil {
		return dbus.Variant{}, err
	}
	s.log.Info("keychain: waiting for the keyring to be unlocked")
	timer := time.NewTimer(s.PromptTimeout)
	defer timer.Stop()
	for {
		select {
		case sig, ok := <-ch:
			if !ok {
				return dbus.Variant{}, errors.New("connection closed while prompting")
			}
			if sig.Path != p || sig.Name != ssPrompt+".Completed" || len(sig.Body) < 2 {
				continue
			}
			if dismissed, _ := sig.Body[0].(bool); dismissed {
				return dbus.Variant{}, errors.New("the keyring prompt was dismissed")
			}
			v, _ := sig.Body[1].(dbus.Variant)
			return v, nil
		case <-timer.C:
			ctx, cancel := s.ctx()
			c.conn.Object(ssName, p).CallWithContext(ctx, ssPrompt+".Dismiss", 0)
			cancel()
			return dbus.Variant{}, fmt.Errorf("nobody answered the keyring prompt within %s", s.PromptTimeout)
		}
	}
}
