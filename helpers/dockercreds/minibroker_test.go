package dockercreds_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/guest/dockerhelper"
	"github.com/spuff-dev/spuff/helpers/dockercreds"
	"github.com/spuff-dev/spuff/helpers/helper"
)

// served is one request as the host saw it.
type served struct {
	Op, Detail, Code, Class string
	Payload                 string
}

// miniBroker runs the Describe → Serve part of the broker pipeline for one
// shed, so these tests drive the service exactly as the broker calls it,
// over a real bus connection.
type miniBroker struct {
	svc *dockercreds.Service
	cfg config.Shed

	mu  sync.Mutex
	log []served
}

func newMiniBroker(svc *dockercreds.Service, c *config.Config, shed string) *miniBroker {
	return &miniBroker{svc: svc, cfg: c.ForShed(shed)}
}

func (m *miniBroker) ServeBus(ctx context.Context, r *bus.Request) (any, error) {
	req := &helper.Request{ID: r.ID, Shed: m.cfg.Name, NS: r.NS, Op: r.Op, Payload: r.Payload, Config: &m.cfg}
	rec := served{Op: r.Op, Payload: string(r.Payload)}
	act, err := m.svc.Describe(ctx, req)
	var out any
	if err == nil {
		rec.Class = act.Class
		out, err = m.svc.Serve(ctx, req, act)
		rec.Detail = act.Detail
	}
	rec.Code = bus.CodeOf(err)
	m.mu.Lock()
	m.log = append(m.log, rec)
	m.mu.Unlock()
	return out, err
}

func (m *miniBroker) served() []served {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]served(nil), m.log...)
}

// pipeHelper is a guest helper connected to m by an in-memory pipe.
func pipeHelper(m *miniBroker) *dockerhelper.Helper {
	return &dockerhelper.Helper{Socket: "pipe", Dial: func(context.Context) (net.Conn, error) {
		guest, host := net.Pipe()
		bus.NewConn(host, m, bus.Options{}) // ends when the guest side closes
		return guest, nil
	}}
}

// guestSock serves m on a unix socket, standing in for the guest daemon's
// guest.sock so the real docker-credential-spuff binary can be run.
func guestSock(t testing.TB, m *miniBroker) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "guest.sock")
	l, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []*bus.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			mu.Lock()
			conns = append(conns, bus.NewConn(nc, m, bus.Options{}))
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return p
}
