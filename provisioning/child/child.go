// Package child runs a provider in a short-lived child process, one per
// call, so that the process which runs all day (spuff-app) never links the
// cloud SDKs. hcloud-go alone brings Prometheus and protobuf, whose
// initialisers touch about 4 MB of pages that spuff-app would otherwise
// keep resident for its whole life, for API calls made a few times a day.
//
// Register, in spuff-app, makes each name a provider whose calls run in
// spuff-cloud (Binary) beside spuff-app's executable. Serve is
// spuff-cloud's side: it answers one call with a provider that binary links.
//
// The child inherits spuff-app's environment, so a provider reads its API
// token from the host's environment exactly as it would in-process; the
// pipe carries the call's arguments and answers, never a token. Closing
// the child's stdin cancels its call, so a child whose caller gave up, or
// whose parent died, stops.
package child

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning"
)

// Binary is the child's executable, looked for beside the running one.
const Binary = "spuff-cloud"

const (
	// newTimeout bounds the call that builds the provider: it reads the
	// environment and makes a client, and touches no network.
	newTimeout = 30 * time.Second
	// cancelGrace is how long a cancelled child may take to stop (its
	// provider returns on the cancelled context) before it is killed.
	cancelGrace = 30 * time.Second
	// maxLine bounds one line of the child's stdout (List of every
	// machine an account holds is the largest).
	maxLine = 16 << 20
	// maxLogLine bounds one line of its log; longer lines are cut.
	maxLogLine = 64 << 10
)

// The calls a child answers.
const (
	opNew    = "new"
	opCreate = "create"
	opGet    = "get"
	opDelete = "delete"
	opList   = "list"
	opStart  = "start"
	opStop   = "stop"
	opSweep  = "sweep"
)

// call is what the parent writes on the child's stdin: one JSON object.
type call struct {
	Provider string                     `json:"provider"`
	Op       string                     `json:"op"`
	Config   *config.Config             `json:"config,omitempty"`
	Home     string                     `json:"home,omitempty"`
	Cache    string                     `json:"cache,omitempty"`
	Debug    bool                       `json:"debug,omitempty"`
	ID       string                     `json:"id,omitempty"`
	Create   *createArgs                `json:"create,omitempty"`
	Sweep    *provisioning.SweepRequest `json:"sweep,omitempty"`
}

// createArgs is a CreateRequest without its Progress (which comes back as
// step lines) and its HostKey (which never leaves spuff-app).
type createArgs struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels,omitempty"`
	UserData []byte            `json:"user_data,omitempty"`
	LoginKey string            `json:"login_key,omitempty"`
}

// line is one line the child writes on stdout: a progress step, or the
// answer (Done), which is the last.
type line struct {
	Step         string                     `json:"step,omitempty"`
	Done         bool                       `json:"done,omitempty"`
	Capabilities *provisioning.Capabilities `json:"capabilities,omitempty"`
	Machine      *provisioning.Machine      `json:"machine,omitempty"`
	Machines     []provisioning.Machine     `json:"machines,omitempty"`
	Error        *wireError                 `json:"error,omitempty"`
}

// wireError keeps an error's words and which of the errors every provider
// speaks it wraps, so errors.Is works on the parent's side.
type wireError struct {
	Message string `json:"message"`
	Kind    string `json:"kind,omitempty"`
}

var kinds = []struct {
	name string
	err  error
}{
	{"not_found", provisioning.ErrNotFound},
	{"unsupported", provisioning.ErrUnsupported},
	{"no_credentials", provisioning.ErrNoCredentials},
	{"canceled", context.Canceled},
	{"deadline", context.DeadlineExceeded},
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{Message: err.Error()}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			w.Kind = k.name
			break
		}
	}
	return w
}

// remoteError is a child's error: its words, unwrapping to its kind.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

func (w *wireError) err() error {
	if w == nil {
		return nil
	}
	e := &remoteError{msg: w.Message}
	for _, k := range kinds {
		if k.name == w.Kind {
			e.kind = k.err
		}
	}
	if e.msg == "" {
		e.msg = "child: " + Binary + " reported an error without words"
	}
	return e
}

// Register makes each name a provider that runs in Binary beside the
// running executable.
func Register(names ...string) {
	for _, n := range names {
		provisioning.Register(n, Factory(n, Beside))
	}
}

// Beside returns Binary's path in the running executable's folder.
func Beside() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("child: finding %s: %w", Binary, err)
	}
	p := filepath.Join(filepath.Dir(exe), Binary)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("child: the cloud providers run in %s, which should be beside %s: %w (reinstall spuff so that both are in one folder)", Binary, exe, err)
	}
	return p, nil
}

// Factory returns a Factory for the provider name in the child that
// locate finds. Building it runs the child once, so a missing token fails
// here, as it would in-process, and the provider's Capabilities are known.
func Factory(name string, locate func() (string, error)) provisioning.Factory {
	return func(env provisioning.Env) (provisioning.Provider, error) {
		if env.HTTPClient != nil {
			return nil, errors.New("child: Env.HTTPClient cannot reach a child process (point the provider's base URL at a fake instead)")
		}
		bin, err := locate()
		if err != nil {
			return nil, err
		}
		log := env.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		p := &Provider{name: name, bin: bin, env: env, log: log}
		ctx, cancel := context.WithTimeout(context.Background(), newTimeout)
		defer cancel()
		l, err := p.call(ctx, call{Op: opNew}, nil)
		if err != nil {
			return nil, err
		}
		if l.Capabilities == nil {
			return nil, fmt.Errorf("child: %s did not say what %s can do", Binary, name)
		}
		p.caps = *l.Capabilities
		return p, nil
	}
}

// Provider is a provider whose every call runs in a fresh child.
type Provider struct {
	name string
	bin  string
	env  provisioning.Env
	log  *slog.Logger
	caps provisioning.Capabilities
}

var (
	_ provisioning.Provider = (*Provider)(nil)
	_ provisioning.Sweeper  = (*Provider)(nil)
)

// Name is the provider's name.
func (p *Provider) Name() string { return p.name }

// Capabilities are what the child said when the provider was built.
func (p *Provider) Capabilities() provisioning.Capabilities { return p.caps }

// Create makes a machine in the child, relaying its progress steps.
func (p *Provider) Create(ctx context.Context, req provisioning.CreateRequest) (provisioning.Machine, error) {
	if req.HostKey != nil {
		return provisioning.Machine{}, fmt.Errorf("child: %s was given a host key; a shed's private key never leaves spuff-app", p.name)
	}
	l, err := p.call(ctx, call{Op: opCreate, Create: &createArgs{Name: req.Name, Labels: req.Labels, UserData: req.UserData, LoginKey: req.LoginKey}}, req.Progress)
	var m provisioning.Machine
	if l.Machine != nil {
		m = *l.Machine
	}
	return m, err
}

// Get asks the child for one machine.
func (p *Provider) Get(ctx context.Context, id string) (provisioning.Machine, error) {
	l, err := p.call(ctx, call{Op: opGet, ID: id}, nil)
	if err != nil {
		return provisioning.Machine{}, err
	}
	if l.Machine == nil {
		return provisioning.Machine{}, fmt.Errorf("child: %s answered get %s without a machine", Binary, id)
	}
	return *l.Machine, nil
}

// Delete ends a machine in the child.
func (p *Provider) Delete(ctx context.Context, id string) error {
	_, err := p.call(ctx, call{Op: opDelete, ID: id}, nil)
	return err
}

// List asks the child for every machine it can see.
func (p *Provider) List(ctx context.Context) ([]provisioning.Machine, error) {
	l, err := p.call(ctx, call{Op: opList}, nil)
	return l.Machines, err
}

// Start starts a machine in the child.
func (p *Provider) Start(ctx context.Context, id string) error {
	_, err := p.call(ctx, call{Op: opStart, ID: id}, nil)
	return err
}

// Stop stops a machine in the child.
func (p *Provider) Stop(ctx context.Context, id string) error {
	_, err := p.call(ctx, call{Op: opStop, ID: id}, nil)
	return err
}

// Sweep asks the child to remove what a Create of req's shed left with no
// machine. A provider that makes nothing besides its machines answers
// ErrUnsupported.
func (p *Provider) Sweep(ctx context.Context, req provisioning.SweepRequest) error {
	_, err := p.call(ctx, call{Op: opSweep, Sweep: &req}, nil)
	return err
}

// call runs one child for c, hands its steps to progress, relays its log
// into p.log and returns its answer, whose Error is the call's error.
func (p *Provider) call(ctx context.Context, c call, progress func(string)) (line, error) {
	c.Provider, c.Config, c.Home, c.Cache = p.name, p.env.Config, p.env.Home, p.env.Cache
	c.Debug = p.log.Enabled(ctx, slog.LevelDebug)
	body, err := json.Marshal(c)
	if err != nil {
		return line{}, fmt.Errorf("child: encoding the %s call: %w", c.Op, err)
	}
	cmd := exec.CommandContext(ctx, p.bin)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return line{}, fmt.Errorf("child: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return line{}, fmt.Errorf("child: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return line{}, fmt.Errorf("child: %w", err)
	}
	// The child stops on its stdin's end; it is killed only if it then
	// takes longer than cancelGrace.
	cmd.Cancel = stdin.Close
	cmd.WaitDelay = cancelGrace
	if err := cmd.Start(); err != nil {
		return line{}, fmt.Errorf("child: starting %s for %s %s: %w", Binary, p.name, c.Op, err)
	}
	// A child that died before reading shows in its exit status below.
	_, _ = stdin.Write(append(body, '\n'))
	var logs sync.WaitGroup
	logs.Add(1)
	go func() {
		defer logs.Done()
		p.relayLog(ctx, stderr)
	}()
	ans, readErr := readAnswer(stdout, progress)
	logs.Wait()
	_ = stdin.Close()
	waitErr := cmd.Wait()
	switch {
	case ans != nil:
		return *ans, ans.Error.err()
	case ctx.Err() != nil:
		return line{}, fmt.Errorf("child: %s %s: %w", p.name, c.Op, ctx.Err())
	case readErr != nil:
		return line{}, fmt.Errorf("child: reading %s's answer to %s %s: %w", Binary, p.name, c.Op, readErr)
	default:
		return line{}, fmt.Errorf("child: %s ended without answering %s %s (%v); its log is above in spuff-app's", Binary, p.name, c.Op, waitErr)
	}
}

// readAnswer reads step lines until the answer, then drains the rest.
func readAnswer(r io.Reader, progress func(string)) (*line, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var answer *line
	for sc.Scan() {
		if answer != nil {
			continue // nothing follows an answer; a child that writes more is ignored
		}
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			_, _ = io.Copy(io.Discard, r)
			return nil, fmt.Errorf("a line that is not a call's answer: %w", err)
		}
		if l.Done {
			answer = &l
			continue
		}
		if progress != nil && l.Step != "" {
			progress(l.Step)
		}
	}
	if err := sc.Err(); err != nil {
		_, _ = io.Copy(io.Discard, r)
		return answer, err
	}
	return answer, nil
}

// relayLog writes each of the child's JSON log records into p.log at its
// level, and anything else it wrote (a panic's trace) as a warning.
func (p *Provider) relayLog(ctx context.Context, r io.Reader) {
	br := bufio.NewReaderSize(r, 4096)
	for {
		b, err := readLogLine(br)
		if len(b) > 0 {
			p.logRecord(ctx, b)
		}
		if err != nil {
			return
		}
	}
}

// readLogLine reads one line, cut at maxLogLine.
func readLogLine(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		frag, isPrefix, err := br.ReadLine()
		if len(out) < maxLogLine {
			out = append(out, frag[:min(len(frag), maxLogLine-len(out))]...)
		}
		if err != nil || !isPrefix {
			return out, err
		}
	}
}

func (p *Provider) logRecord(ctx context.Context, b []byte) {
	var rec map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&rec); err != nil {
		p.log.Warn("child: "+Binary+" wrote", "provider", p.name, "line", string(b))
		return
	}
	var level slog.Level
	if s, ok := rec[slog.LevelKey].(string); !ok || level.UnmarshalText([]byte(s)) != nil {
		level = slog.LevelInfo
	}
	msg, _ := rec[slog.MessageKey].(string)
	delete(rec, slog.TimeKey)
	delete(rec, slog.LevelKey)
	delete(rec, slog.MessageKey)
	keys := make([]string, 0, len(rec))
	for k := range rec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, rec[k]))
	}
	p.log.LogAttrs(ctx, level, msg, attrs...)
}
