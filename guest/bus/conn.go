package bus

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by calls on a closed Conn.
var ErrClosed = errors.New("bus: connection closed")

// ErrNotReading ends a connection whose peer lets its answers pile up
// unread (more than MaxQueued bytes, or one write blocked for WriteTimeout).
var ErrNotReading = errors.New("bus: the peer is not reading its answers")

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
	// Refused, if set, is told of each request the Conn answers itself,
	// without the Handler (one over MaxInFlight, or any when there is no
	// Handler), before that answer is sent; the answer sent is the error it
	// returns, so an owner that audits every answer can audit these too and
	// deny when it cannot. It runs on the read loop, one call at a time:
	// it may write an audit line but must never wait on a person.
	Refused func(r *Request, err *Error) *Error
	// MaxQueued bounds the bytes of frames waiting to be written (4 MiB): a
	// frame is queued only while fewer wait, so one big answer always fits.
	// A peer that lets more pile up is not reading; its connection is closed.
	MaxQueued int
	// WriteTimeout closes the connection when one write stays blocked this
	// long (10s). It works on every stream, deadlines or not (ssh://).
	WriteTimeout time.Duration
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger
}

// Conn multiplexes requests in both directions over one stream.
type Conn struct {
	rwc  io.ReadWriteCloser
	h    Handler
	opts Options
	log  *slog.Logger

	// Frames wait in out until whoever finds no writer at work writes them:
	// the goroutine that queued the first, or (for frames the read loop
	// queues, which must never block it) a goroutine started for them.
	wmu     sync.Mutex
	out     [][]byte
	queued  int    // bytes in out
	writing bool   // a goroutine is writing out
	joined  []byte // the writer's: small frames joined for one write
	// writeSince is when the write in progress began (unix ns), 0 if none;
	// the monitor closes the connection when it has lasted WriteTimeout.
	writeSince atomic.Int64

	mu      sync.Mutex
	pending map[string]*call
	err     error

	sem    chan struct{}
	work   chan *Envelope // hands a request to a parked worker
	idle   atomic.Int32   // workers parked on work; approximate, used only as a bound
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	seen   atomic.Bool // a frame arrived since the monitor last looked
	mon    *monitor
	// workerIdle is how long a parked worker waits for another request.
	workerIdle time.Duration
}

type call struct {
	resp     chan *Envelope
	progress chan string
	onProg   func(note string)
}

// DefaultMaxWait is how long a call waits at most, progress frames and all,
// unless Options.MaxWait says otherwise. spuff-guest keeps it, so it bounds
// how long a shed waits for a human's answer.
const DefaultMaxWait = 60 * time.Second

// NewConn starts serving rwc. h may be nil when this side only calls.
func NewConn(rwc io.ReadWriteCloser, h Handler, opts Options) *Conn {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 3 * time.Second
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 256
	}
	if opts.MaxQueued <= 0 {
		opts.MaxQueued = 4 << 20
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{
		rwc: rawStreamOf(rwc), h: h, opts: opts, log: log,
		pending: make(map[string]*call),
		sem:     make(chan struct{}, opts.MaxInFlight),
		work:    make(chan *Envelope), workerIdle: workerIdle,
		ctx: ctx, cancel: cancel,
		done: make(chan struct{}),
	}
	c.startMonitor()
	go c.readLoop()
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

// write queues e and, unless another goroutine is writing, writes the
// queue itself. It never waits behind another writer.
func (c *Conn) write(e *Envelope) error {
	return c.send(e, false)
}

// send queues e; spawn says the caller must not write (the read loop), so
// a goroutine is started to write when nobody is.
func (c *Conn) send(e *Envelope, spawn bool) error {
	b, err := EncodeEnvelope(e)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	if err := c.Err(); err != nil {
		c.wmu.Unlock()
		return err
	}
	if c.queued >= c.opts.MaxQueued {
		c.out, c.queued = nil, 0
		c.wmu.Unlock()
		c.log.Warn("bus: closing a connection whose peer does not read its answers", "queued_over", c.opts.MaxQueued)
		c.fail(fmt.Errorf("%w (more than %d bytes queued)", ErrNotReading, c.opts.MaxQueued))
		return ErrNotReading
	}
	c.out = append(c.out, b)
	c.queued += len(b)
	if c.writing {
		c.wmu.Unlock()
		return nil
	}
	c.writing = true
	c.wmu.Unlock()
	if spawn {
		go c.flush() //nolint:errcheck // a failed write fails the conn
		return nil
	}
	return c.flush()
}

// flush writes the queue until it is empty; only the goroutine that set
// writing calls it.
func (c *Conn) flush() error {
	var batch [][]byte
	for {
		c.wmu.Lock()
		if len(c.out) == 0 || c.Err() != nil {
			c.out, c.queued, c.writing = nil, 0, false
			c.wmu.Unlock()
			return c.Err()
		}
		batch = append(batch[:0], c.out...)
		clear(c.out)
		c.out, c.queued = c.out[:0], 0
		c.wmu.Unlock()
		c.writeSince.Store(time.Now().UnixNano())
		err := c.writeBatch(batch)
		c.writeSince.Store(0)
		clear(batch)
		if err != nil {
			c.fail(fmt.Errorf("bus: writing frame: %w", err))
		}
	}
}

// writeBatch writes frames in one write: small ones joined, big ones by
// one writev where the stream has it (vsock).
func (c *Conn) writeBatch(batch [][]byte) error {
	if len(batch) == 1 {
		_, err := c.rwc.Write(batch[0])
		return err
	}
	total := 0
	for _, b := range batch {
		total += len(b)
	}
	if total > 64<<10 {
		bufs := net.Buffers(batch)
		_, err := bufs.WriteTo(c.rwc)
		return err
	}
	c.joined = c.joined[:0]
	for _, b := range batch {
		c.joined = append(c.joined, b...)
	}
	_, err := c.rwc.Write(c.joined)
	return err
}

func (c *Conn) readLoop() {
	defer func() {
		close(c.done)
		c.mon.stop()
	}()
	var buf []byte
	// Most frames are small: one read brings the header and the body.
	br := bufio.NewReaderSize(c.rwc, 4<<10)
	for {
		body, err := ReadFrame(br, buf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				err = ErrClosed
			} else {
				c.log.Warn("bus: closing connection", "err", err)
			}
			c.fail(err)
			break
		}
		// A huge frame's buffer is not kept for the connection's life.
		if cap(body) <= 64<<10 {
			buf = body[:0]
		} else {
			buf = nil
		}
		c.seen.Store(true)
		e, err := DecodeEnvelope(body)
		if err != nil {
			c.log.Warn("bus: closing connection on a bad frame", "err", err)
			c.fail(err)
			break
		}
		c.dispatch(e)
		if br.Buffered() == 0 {
			// The goroutine dispatch woke (a worker, or the caller this
			// answer is for) runs first: the next read usually finds
			// nothing and only parks this loop, and made first it was one
			// system call on every request's path (measured on
			// agent-forward signs, interleaved: 4-7 % off the overhead).
			runtime.Gosched()
		}
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
		_ = c.send(&Envelope{V: Version, ID: e.ID, Type: TypePong}, true)
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
		if c.h == nil {
			c.refuse(e, Errorf(CodeBadRequest, "this side serves no requests"))
			return
		}
		select {
		case c.sem <- struct{}{}:
		default:
			c.refuse(e, Errorf(CodeRateLimited, "too many requests in flight on this connection"))
			return
		}
		select {
		case c.work <- e:
		default:
			go c.worker(e)
		}
	}
}

// maxIdleWorkers is how many serving goroutines a Conn keeps parked
// between requests, each for at most workerIdle: a stream of requests
// keeps its workers, a quiet shed holds none.
const maxIdleWorkers = 4

// workerIdle is each new Conn's workerIdle (a variable so tests can shorten it).
var workerIdle = time.Second

// worker serves e, then waits for the next request rather than ending: a
// fresh goroutine's stack is small, and growing it to what a handler needs
// (decoding, the audit line, the reply) is copied again on every request.
// Beyond maxIdleWorkers parked ones, a worker ends, so a burst leaves no
// crowd behind.
func (c *Conn) worker(e *Envelope) {
	var idle *time.Timer
	for {
		c.serve(e)
		<-c.sem
		if c.idle.Add(1) > maxIdleWorkers {
			c.idle.Add(-1)
			return
		}
		if idle == nil {
			idle = time.NewTimer(c.workerIdle)
		} else {
			idle.Reset(c.workerIdle)
		}
		select {
		case e = <-c.work:
			c.idle.Add(-1)
		case <-idle.C:
			c.idle.Add(-1)
			return
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *Conn) serve(e *Envelope) {
	payload, err := c.h.ServeBus(c.ctx, &Request{Envelope: *e, conn: c})
	c.reply(e, payload, err, false)
}

// refuse answers e on the read loop, after telling Options.Refused.
func (c *Conn) refuse(e *Envelope, be *Error) {
	if c.opts.Refused != nil {
		if got := c.opts.Refused(&Request{Envelope: *e, conn: c}, be); got != nil {
			be = got
		}
	}
	c.reply(e, nil, be, true)
}

func (c *Conn) reply(req *Envelope, payload any, err error, spawn bool) {
	out := &Envelope{V: Version, ID: req.ID, Type: TypeResponse, NS: req.NS, Op: req.Op}
	if err != nil {
		var be *Error
		if !errors.As(err, &be) {
			be = &Error{Code: CodeInternal, Message: err.Error()}
		}
		out.Error = be
	} else if raw, ok := payload.(json.RawMessage); ok {
		// A relayed answer, decoded from a frame and so valid JSON: sent as
		// it came, not decoded and encoded again.
		out.Payload = raw
	} else if payload != nil {
		raw, merr := json.Marshal(payload)
		if merr != nil {
			out.Error = Errorf(CodeInternal, "encoding reply: %v", merr)
		} else {
			out.Payload = raw
		}
	}
	werr := c.send(out, spawn)
	if errors.Is(werr, errEncoding) && out.Payload != nil {
		// A handler's raw payload that is not JSON: the caller still gets an answer.
		out.Payload, out.Error = nil, Errorf(CodeInternal, "encoding reply: %v", werr)
		werr = c.send(out, spawn)
	}
	if werr != nil {
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
	if raw, ok := out.(*json.RawMessage); ok {
		// Decoding made the payload its own copy, checked as JSON.
		*raw = resp.Payload
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

// monitor closes the connection when a write stays blocked WriteTimeout,
// and, with KeepAlive, pings the peer and closes the connection when
// nothing at all arrives for three intervals. It looks on a coarse timer,
// so no frame pays for a timer or a wake-up, and between looks it is no
// goroutine at all: a host holds one Conn per shed.
type monitor struct {
	mu            sync.Mutex // the timer is set before any look uses it
	c             *Conn
	tick          time.Duration
	t             *time.Timer
	heard, pinged time.Time
}

func (c *Conn) startMonitor() {
	tick := c.opts.WriteTimeout / 4
	if ka := c.opts.KeepAlive; ka > 0 && ka < tick {
		tick = ka
	}
	now := time.Now()
	m := &monitor{c: c, tick: tick, heard: now, pinged: now}
	// Each look arms the next, so looks never overlap.
	m.mu.Lock()
	m.t = time.AfterFunc(tick, m.look)
	m.mu.Unlock()
	c.mon = m
}

func (m *monitor) stop() {
	m.mu.Lock()
	m.t.Stop() // a look already running sees done and ends
	m.mu.Unlock()
}

func (m *monitor) look() {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.c
	select {
	case <-c.done:
		return
	default:
	}
	now := time.Now()
	if s := c.writeSince.Load(); s != 0 && now.Sub(time.Unix(0, s)) >= c.opts.WriteTimeout {
		c.log.Warn("bus: a write blocked too long; closing", "after", c.opts.WriteTimeout)
		c.fail(fmt.Errorf("%w (one write blocked for %s)", ErrNotReading, c.opts.WriteTimeout))
		return
	}
	if ka := c.opts.KeepAlive; ka > 0 {
		if c.seen.Swap(false) {
			m.heard = now
		}
		if now.Sub(m.heard) >= 3*ka {
			c.log.Warn("bus: peer silent, closing", "after", 3*ka)
			c.fail(errors.New("bus: keepalive: peer stopped answering"))
			return
		}
		if now.Sub(m.pinged) >= ka {
			m.pinged = now
			go c.Ping(c.ctx) //nolint:errcheck // the pong, if any, marks seen
		}
	}
	m.t.Reset(m.tick)
}
