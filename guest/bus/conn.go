package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ErrClosed is returned by calls on a closed Conn.
var ErrClosed = errors.New("bus: connection closed")

// Handler serves requests that arrive from the peer.
type Handler interface {
	ServeBus(ctx context.Context, r *Request) (payload any, err error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, r *Request) (any, error)

// ServeBus calls f.
func (f HandlerFunc) ServeBus(ctx context.Context, r *Request) (any, error) { return f(ctx, r) }

// Request is an incoming request. Progress tells the caller the answer is
// still coming, which extends the caller's deadline.
type Request struct {
	Envelope
	conn *Conn
}

// Progress sends a progress frame for this request.
func (r *Request) Progress(note string) error {
	var p json.RawMessage
	if note != "" {
		p, _ = json.Marshal(ProgressPayload{Note: note})
	}
	return r.conn.write(&Envelope{V: Version, ID: r.ID, Type: TypeProgress, Payload: p})
}

// ProgressPayload says why the answer is late.
type ProgressPayload struct {
	Note string `json:"note,omitempty"`
}

// Options tune a Conn. Zero values take the defaults.
type Options struct {
	// CallTimeout is how long Call waits for an answer with no progress (3s).
	CallTimeout time.Duration
	// MaxWait caps how far progress frames can extend a call (60s).
	MaxWait time.Duration
	// KeepAlive sends a ping this often and closes the connection when
	// nothing at all arrives for three intervals. Zero disables it.
	KeepAlive time.Duration
	// MaxInFlight caps concurrent incoming requests (256); more are refused.
	MaxInFlight int
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger
}

// Conn multiplexes requests in both directions over one stream.
type Conn struct {
	rwc  io.ReadWriteCloser
	h    Handler
	opts Options
	log  *slog.Logger

	wmu sync.Mutex

	mu      sync.Mutex
	pending map[string]*call
	err     error

	sem    chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	seen   chan struct{}
}

type call struct {
	resp     chan *Envelope
	progress chan string
	onProg   func(note string)
}

// NewConn starts serving rwc. h may be nil when this side only calls.
func NewConn(rwc io.ReadWriteCloser, h Handler, opts Options) *Conn {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 3 * time.Second
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 60 * time.Second
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 256
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{
		rwc: rwc, h: h, opts: opts, log: log,
		pending: make(map[string]*call),
		sem:     make(chan struct{}, opts.MaxInFlight),
		ctx:     ctx, cancel: cancel,
		done: make(chan struct{}),
		seen: make(chan struct{}, 1),
	}
	go c.readLoop()
	if opts.KeepAlive > 0 {
		go c.keepAlive()
	}
	return c
}

// Done is closed when the connection ends.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection; calls in flight fail with ErrClosed.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	<-c.done
	return nil
}

func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.mu.Unlock()
	c.cancel()
	c.rwc.Close()
}

func (c *Conn) write(e *Envelope) error {
	b, err := EncodeEnvelope(e)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.Err(); err != nil {
		return err
	}
	if d, ok := c.rwc.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = d.SetWriteDeadline(time.Now().Add(10 * time.Second))
	}
	if _, err := c.rwc.Write(b); err != nil {
		c.fail(fmt.Errorf("bus: writing frame: %w", err))
		return err
	}
	return nil
}

func (c *Conn) readLoop() {
	defer close(c.done)
	var buf []byte
	for {
		body, err := ReadFrame(c.rwc, buf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				err = ErrClosed
			} else {
				c.log.Warn("bus: closing connection", "err", err)
			}
			c.fail(err)
			break
		}
		buf = body[:0]
		select {
		case c.seen <- struct{}{}:
		default:
		}
		e, err := DecodeEnvelope(body)
		if err != nil {
			c.log.Warn("bus: closing connection on a bad frame", "err", err)
			c.fail(err)
			break
		}
		c.dispatch(e)
	}
	c.mu.Lock()
	for id, cl := range c.pending {
		close(cl.resp)
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

func (c *Conn) dispatch(e *Envelope) {
	switch e.Type {
	case TypePing:
		go c.write(&Envelope{V: Version, ID: e.ID, Type: TypePong}) //nolint:errcheck // a failed write fails the conn
	case TypeResponse, TypePong:
		c.mu.Lock()
		cl := c.pending[e.ID]
		delete(c.pending, e.ID)
		c.mu.Unlock()
		if cl != nil {
			cl.resp <- e
		}
	case TypeProgress:
		c.mu.Lock()
		cl := c.pending[e.ID]
		c.mu.Unlock()
		if cl != nil {
			var p ProgressPayload
			_ = json.Unmarshal(e.Payload, &p)
			select {
			case cl.progress <- p.Note:
			default:
			}
		}
	case TypeRequest:
		select {
		case c.sem <- struct{}{}:
		default:
			go c.reply(e, nil, Errorf(CodeRateLimited, "too many requests in flight on this connection"))
			return
		}
		go func() {
			defer func() { <-c.sem }()
			c.serve(e)
		}()
	}
}

func (c *Conn) serve(e *Envelope) {
	if c.h == nil {
		c.reply(e, nil, Errorf(CodeBadRequest, "this side serves no requests"))
		return
	}
	payload, err := c.h.ServeBus(c.ctx, &Request{Envelope: *e, conn: c})
	c.reply(e, payload, err)
}

func (c *Conn) reply(req *Envelope, payload any, err error) {
	out := &Envelope{V: Version, ID: req.ID, Type: TypeResponse, NS: req.NS, Op: req.Op}
	if err != nil {
		var be *Error
		if !errors.As(err, &be) {
			be = &Error{Code: CodeInternal, Message: err.Error()}
		}
		out.Error = be
	} else if payload != nil {
		raw, merr := json.Marshal(payload)
		if merr != nil {
			out.Error = Errorf(CodeInternal, "encoding reply: %v", merr)
		} else {
			out.Payload = raw
		}
	}
	if werr := c.write(out); werr != nil {
		c.log.Debug("bus: reply not sent", "id", req.ID, "err", werr)
	}
}

// Call sends a request and decodes the answer into out (which may be nil).
// It waits CallTimeout, extended by each progress frame up to MaxWait, or
// until ctx ends. A failure the peer reports is returned as *Error.
func (c *Conn) Call(ctx context.Context, ns, op string, payload, out any) error {
	var raw json.RawMessage
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return fmt.Errorf("bus: encoding %s/%s payload: %w", ns, op, err)
		}
		raw = b
	}
	return c.CallEnvelope(ctx, &Envelope{V: Version, ID: NewID(), Type: TypeRequest, NS: ns, Op: op, Payload: raw}, out)
}

// CallEnvelope sends a prepared request envelope (its id must be fresh) and
// decodes the answer into out.
func (c *Conn) CallEnvelope(ctx context.Context, req *Envelope, out any) error {
	return c.CallProgress(ctx, req, out, nil)
}

// CallProgress is CallEnvelope that also reports each progress frame to
// onProgress, so a relay can pass the news on to its own caller.
func (c *Conn) CallProgress(ctx context.Context, req *Envelope, out any, onProgress func(note string)) error {
	resp, err := c.roundTrip(ctx, req, onProgress)
	if err != nil {
		return err
	}
	if resp.Error != nil {
		return resp.Error
	}
	if out == nil || len(resp.Payload) == 0 {
		return nil
	}
	if err := json.Unmarshal(resp.Payload, out); err != nil {
		return fmt.Errorf("bus: decoding %s/%s reply: %w", req.NS, req.Op, err)
	}
	return nil
}

func (c *Conn) roundTrip(ctx context.Context, req *Envelope, onProgress func(string)) (*Envelope, error) {
	cl := &call{resp: make(chan *Envelope, 1), progress: make(chan string, 1), onProg: onProgress}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	if _, dup := c.pending[req.ID]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("bus: request id %s already in flight", req.ID)
	}
	c.pending[req.ID] = cl
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, req.ID)
		c.mu.Unlock()
	}
	if err := c.write(req); err != nil {
		forget()
		return nil, err
	}
	start := time.Now()
	limit := start.Add(c.opts.MaxWait)
	timer := time.NewTimer(c.opts.CallTimeout)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-cl.resp:
			if !ok {
				return nil, ErrClosed
			}
			return e, nil
		case note := <-cl.progress:
			if cl.onProg != nil {
				cl.onProg(note)
			}
			next := time.Now().Add(c.opts.CallTimeout)
			if next.After(limit) {
				next = limit
			}
			timer.Reset(time.Until(next))
		case <-timer.C:
			forget()
			return nil, fmt.Errorf("bus: %s/%s: no answer after %s: %w", req.NS, req.Op, time.Since(start).Round(time.Millisecond), context.DeadlineExceeded)
		case <-ctx.Done():
			forget()
			return nil, ctx.Err()
		}
	}
}

// Ping sends a ping frame and waits for its pong.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	_, err := c.roundTrip(ctx, &Envelope{V: Version, ID: NewID(), Type: TypePing}, nil)
	return time.Since(start), err
}

func (c *Conn) keepAlive() {
	t := time.NewTicker(c.opts.KeepAlive)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-c.done:
			return
		case <-c.seen:
			missed = 0
		case <-t.C:
			missed++
			if missed >= 3 {
				c.log.Warn("bus: peer silent, closing", "after", 3*c.opts.KeepAlive)
				c.fail(errors.New("bus: keepalive: peer stopped answering"))
				return
			}
			go c.Ping(c.ctx) //nolint:errcheck // the pong, if any, shows up in seen
		}
	}
}
