package broker

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/guest/bus"
)

// attachment keeps one shed connected. Its name is the only identity a request
// on its connection can have.
type attachment struct {
	b       *Broker
	name    string
	url     string
	cfg     *config.Shed
	limiter *rate.Limiter
	floods  *floods
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}

	mu   sync.Mutex
	conn *bus.Conn
	st   api.Attachment
}

func newAttachment(b *Broker, name, url string, cfg *config.Shed) *attachment {
	ctx, cancel := context.WithCancel(context.Background())
	return &attachment{
		b: b, name: name, url: url, cfg: cfg,
		limiter: rate.NewLimiter(rate.Limit(cfg.Limits.RequestsPerSecond), cfg.Limits.Burst),
		floods:  newFloods(func(r audit.Record) error { return b.opts.Audit.Write(context.Background(), r) }),
		ctx:     ctx, cancel: cancel, done: make(chan struct{}),
		st: api.Attachment{Name: name, URL: url, State: api.StateConnecting, Since: b.opts.Now().UTC()},
	}
}

func (s *attachment) ServeBus(ctx context.Context, r *bus.Request) (any, error) {
	return s.b.handle(ctx, s, r)
}

func (s *attachment) run() {
	defer close(s.done)
	backoff := s.b.opts.MinBackoff
	for s.ctx.Err() == nil {
		err := s.connectOnce()
		if s.ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff = s.b.opts.MinBackoff // it was up; retry quickly
		}
		s.setState(api.StateDisconnected, err)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.b.opts.MaxBackoff)
	}
}

// connectOnce dials, says hello and serves until the connection ends. It
// returns nil when a connection was established (and later lost).
func (s *attachment) connectOnce() error {
	s.setState(api.StateConnecting, nil)
	// A peer that accepts and then says nothing must not hold the shed in
	// "connecting" for good: the attempt, hello included, is bounded and
	// then retried.
	dctx, cancel := context.WithTimeout(s.ctx, s.b.opts.DialTimeout)
	defer cancel()
	rwc, err := s.b.opts.Dial(dctx, s.url)
	if err != nil {
		return err
	}
	opts := s.b.opts.Bus
	opts.Logger = s.b.log.With("shed", s.name)
	opts.Refused = func(r *bus.Request, be *bus.Error) *bus.Error { return s.b.refused(s, r, be) }
	c := bus.NewConn(rwc, s, opts)
	var hello bus.HelloResponse
	if err := c.Call(dctx, bus.NSAgent, bus.OpHello, bus.HelloRequest{Version: bus.Version}, &hello); err != nil {
		c.Close()
		return err
	}
	s.mu.Lock()
	s.conn = c
	s.st.GuestVersion = hello.GuestVersion
	s.st.Namespaces = hello.Namespaces
	s.mu.Unlock()
	s.setState(api.StateConnected, nil)
	s.b.log.Info("shed connected", "shed", s.name, "guest_version", printable(hello.GuestVersion))
	select {
	case <-c.Done():
	case <-s.ctx.Done():
		c.Close()
	}
	s.mu.Lock()
	s.conn = nil
	s.mu.Unlock()
	if s.ctx.Err() == nil {
		s.b.log.Warn("shed connection lost; reconnecting", "shed", s.name, "err", c.Err())
	}
	return nil
}

func (s *attachment) setState(state string, err error) {
	s.mu.Lock()
	changed := s.st.State != state
	s.st.State = state
	if changed {
		s.st.Since = s.b.opts.Now().UTC()
	}
	if err != nil {
		s.st.LastError = err.Error()
	} else if state == api.StateConnected {
		s.st.LastError = ""
	}
	s.mu.Unlock()
	if changed {
		s.b.publish(api.Event{Kind: api.EventShed, Shed: s.name, State: state})
	}
}

func (s *attachment) current() *bus.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

func (s *attachment) count(result string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Requests++
	switch result {
	case "denied":
		s.st.Denied++
	case "error":
		s.st.Errors++
	}
}

func (s *attachment) status() api.Attachment {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Namespaces = append([]string(nil), s.st.Namespaces...)
	return st
}

func (s *attachment) stop() {
	s.cancel()
	<-s.done
}
