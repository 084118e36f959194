package child

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/spuff-dev/spuff/provisioning"
)

// Serve answers the one call on stdin with a provider registered in this
// binary, writing step lines and then the answer on stdout and its log as
// JSON records on stderr. It returns the process's exit code: 0 whenever
// an answer was written, even one carrying the provider's error.
func Serve(stdin io.Reader, stdout, stderr io.Writer) int {
	dec := json.NewDecoder(stdin)
	var c call
	if err := dec.Decode(&c); err != nil {
		fmt.Fprintf(stderr, "%s: reading the call on stdin: %v (spuff-app runs this; it is not run by hand)\n", Binary, err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// The parent holds stdin open for the call's length; its end is
		// the parent giving up or dying.
		_, _ = io.Copy(io.Discard, io.MultiReader(dec.Buffered(), stdin))
		cancel()
	}()
	level := slog.LevelInfo
	if c.Debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	out := &writer{enc: json.NewEncoder(stdout)}
	a := run(ctx, c, log, out.step)
	a.Done = true
	if err := out.write(a); err != nil {
		fmt.Fprintf(stderr, "%s: writing the answer: %v\n", Binary, err)
		return 1
	}
	return 0
}

// writer serialises the lines of one answer: a provider may report
// progress from several goroutines.
type writer struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (w *writer) write(l line) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.enc.Encode(l)
}

func (w *writer) step(s string) { _ = w.write(line{Step: s}) }

// run runs c against the provider it names.
func run(ctx context.Context, c call, log *slog.Logger, step func(string)) line {
	p, err := provisioning.New(c.Provider, provisioning.Env{Config: c.Config, Getenv: os.Getenv, Logger: log, Home: c.Home, Cache: c.Cache})
	if err != nil {
		return line{Error: toWire(err)}
	}
	switch c.Op {
	case opNew:
		caps := p.Capabilities()
		return line{Capabilities: &caps}
	case opCreate:
		if c.Create == nil {
			return line{Error: toWire(fmt.Errorf("child: a create call without its request"))}
		}
		m, err := p.Create(ctx, provisioning.CreateRequest{Name: c.Create.Name, Labels: c.Create.Labels, UserData: c.Create.UserData, LoginKey: c.Create.LoginKey, Progress: step})
		return line{Machine: &m, Error: toWire(err)}
	case opGet:
		m, err := p.Get(ctx, c.ID)
		if err != nil {
			return line{Error: toWire(err)}
		}
		return line{Machine: &m}
	case opDelete:
		return line{Error: toWire(p.Delete(ctx, c.ID))}
	case opList:
		ms, err := p.List(ctx)
		return line{Machines: ms, Error: toWire(err)}
	case opStart:
		return line{Error: toWire(p.Start(ctx, c.ID))}
	case opStop:
		return line{Error: toWire(p.Stop(ctx, c.ID))}
	case opSweep:
		sw, ok := p.(provisioning.Sweeper)
		switch {
		case c.Sweep == nil:
			return line{Error: toWire(fmt.Errorf("child: a sweep call without its request"))}
		case !ok:
			return line{Error: toWire(fmt.Errorf("child: %s makes nothing but machines: %w", c.Provider, provisioning.ErrUnsupported))}
		}
		return line{Error: toWire(sw.Sweep(ctx, *c.Sweep))}
	}
	return line{Error: toWire(fmt.Errorf("child: %s has no call %q (spuff-app and %s are from different builds?)", Binary, c.Op, Binary))}
}
