package child

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning"
)

// This test binary is its own child: run with serveEnv set, it is
// spuff-cloud with the fake provider below registered.
const (
	serveEnv = "SPUFF_CHILD_TEST_SERVE"
	tokenEnv = "SPUFF_CHILD_TEST_TOKEN"
	markEnv  = "SPUFF_CHILD_TEST_MARK"
	fakeName = "childfake"
	// sweeperName is the fake that also sweeps.
	sweeperName = "childsweeper"
)

func TestMain(m *testing.M) {
	provisioning.Register(fakeName, newFake)
	provisioning.Register(sweeperName, func(env provisioning.Env) (provisioning.Provider, error) {
		p, err := newFake(env)
		return sweeper{p.(*fake)}, err
	})
	if os.Getenv(serveEnv) == "1" {
		os.Exit(Serve(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type fake struct {
	provisioning.NoStartStop
	env provisioning.Env
}

func newFake(env provisioning.Env) (provisioning.Provider, error) {
	if env.Getenv(tokenEnv) == "" {
		return nil, fmt.Errorf("fake: set %s: %w", tokenEnv, provisioning.ErrNoCredentials)
	}
	env.Logger.Debug("fake: built", "home", env.Home)
	env.Logger.Info("fake: ready", "calls", 1)
	return &fake{env: env}, nil
}

func (f *fake) Name() string { return fakeName }
func (f *fake) Capabilities() provisioning.Capabilities {
	return provisioning.Capabilities{Local: true}
}

func (f *fake) Create(ctx context.Context, req provisioning.CreateRequest) (provisioning.Machine, error) {
	req.Progress("asking the API")
	req.Progress("waiting for an address")
	m := provisioning.Machine{ID: "m-" + req.Name, Name: req.Name, State: provisioning.Pending, Labels: req.Labels,
		// What crossed the pipe, for the test to compare.
		Status: fmt.Sprintf("user=%s home=%s cache=%s key=%s data=%q", f.env.Config.Provision.User, f.env.Home, f.env.Cache, req.LoginKey, req.UserData)}
	if req.Name == "half" {
		return m, errors.New("fake: made it, then the API refused its firewall")
	}
	return m, nil
}

func (f *fake) Get(ctx context.Context, id string) (provisioning.Machine, error) {
	switch id {
	case "gone":
		return provisioning.Machine{}, fmt.Errorf("fake: server %s: %w", id, provisioning.ErrNotFound)
	case "panic":
		panic("fake: a bug in the provider")
	}
	return provisioning.Machine{ID: id, State: provisioning.Running, SSHAddr: "192.0.2.7:22"}, nil
}

func (f *fake) Delete(ctx context.Context, id string) error {
	if id == "block" {
		<-ctx.Done()
		// The child saw the cancel and returned: not killed.
		_ = os.WriteFile(os.Getenv(markEnv), []byte("cancelled"), 0o600)
		return ctx.Err()
	}
	return nil
}

func (f *fake) List(ctx context.Context) ([]provisioning.Machine, error) {
	return []provisioning.Machine{{ID: "1", Name: "a"}, {ID: "2", Name: "b"}}, nil
}

// sweeper is the fake with Sweep, which writes the request it was given
// to the file markEnv names.
type sweeper struct{ *fake }

func (sweeper) Sweep(ctx context.Context, req provisioning.SweepRequest) error {
	if req.Name == "refused" {
		return errors.New("fake: the API refused to list firewalls")
	}
	return os.WriteFile(os.Getenv(markEnv), fmt.Appendf(nil, "%s %v %s", req.Name, req.Labels, req.LoginKey), 0o600)
}

// records keeps what the parent's logger was given.
type records struct {
	buf   bytes.Buffer
	level slog.Level
}

func (r *records) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&r.buf, &slog.HandlerOptions{Level: r.level}))
}

func self() (string, error) { return os.Executable() }

func build(t *testing.T, log *slog.Logger) provisioning.Provider {
	t.Helper()
	return buildNamed(t, fakeName, log)
}

func buildNamed(t *testing.T, name string, log *slog.Logger) provisioning.Provider {
	t.Helper()
	t.Setenv(serveEnv, "1")
	t.Setenv(tokenEnv, "not-a-real-token")
	p, err := Factory(name, self)(provisioning.Env{Config: &config.Config{Provision: config.Provision{User: "dev"}}, Home: "/h", Cache: "/c", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEveryCallCrossesToTheChild(t *testing.T) {
	p := build(t, nil)
	if p.Name() != fakeName || p.Capabilities() != (provisioning.Capabilities{Local: true}) {
		t.Fatalf("name %q capabilities %+v, want the child's", p.Name(), p.Capabilities())
	}
	ctx := context.Background()
	var steps []string
	m, err := p.Create(ctx, provisioning.CreateRequest{Name: "web", Labels: map[string]string{"spuff": "web"}, UserData: []byte("#cloud-config\n"), LoginKey: "ssh-ed25519 AAAA",
		Progress: func(s string) { steps = append(steps, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if want := `user=dev home=/h cache=/c key=ssh-ed25519 AAAA data="#cloud-config\n"`; m.ID != "m-web" || m.Labels["spuff"] != "web" || m.Status != want {
		t.Fatalf("create gave %+v; want status %s", m, want)
	}
	if strings.Join(steps, "|") != "asking the API|waiting for an address" {
		t.Fatalf("progress %q, want both steps in order", steps)
	}
	if m, err := p.Get(ctx, "i-9"); err != nil || m.SSHAddr != "192.0.2.7:22" || m.State != provisioning.Running {
		t.Fatalf("get: %+v %v", m, err)
	}
	if ms, err := p.List(ctx); err != nil || len(ms) != 2 || ms[1].Name != "b" {
		t.Fatalf("list: %+v %v", ms, err)
	}
	if err := p.Delete(ctx, "i-9"); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

// The errors every provider speaks keep their identity and words across
// the pipe, and a create that made something returns it beside its error.
func TestErrorsCrossWithTheirKind(t *testing.T) {
	p := build(t, nil)
	ctx := context.Background()
	_, err := p.Get(ctx, "gone")
	if !errors.Is(err, provisioning.ErrNotFound) || err.Error() != "fake: server gone: provisioning: no such machine" {
		t.Fatalf("get of a gone machine: %v, want ErrNotFound in the provider's words", err)
	}
	if err := p.Start(ctx, "i-9"); !errors.Is(err, provisioning.ErrUnsupported) {
		t.Fatalf("start: %v, want ErrUnsupported", err)
	}
	m, err := p.Create(ctx, provisioning.CreateRequest{Name: "half", Progress: func(string) {}})
	if err == nil || m.ID != "m-half" || !strings.Contains(err.Error(), "refused its firewall") {
		t.Fatalf("half-made create: %+v %v, want the machine beside the error", m, err)
	}
	if _, err := p.Create(ctx, provisioning.CreateRequest{Name: "x", HostKey: &provisioning.HostKey{PrivatePEM: []byte("k")}}); err == nil {
		t.Fatal("a host key was sent to a child")
	}
}

// A sweep crosses to the child whole; a provider that makes nothing but
// machines answers ErrUnsupported, and a sweep's failure comes back.
func TestSweepCrossesToTheChild(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "mark")
	t.Setenv(markEnv, mark)
	ctx := context.Background()
	req := provisioning.SweepRequest{Name: "lost", Labels: provisioning.Labels("lost", "alice-laptop"), LoginKey: "ssh-ed25519 AAAA"}
	sw, ok := buildNamed(t, sweeperName, nil).(provisioning.Sweeper)
	if !ok {
		t.Fatal("the child's provider is not a Sweeper")
	}
	if err := sw.Sweep(ctx, req); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(mark); err != nil || string(b) != "lost map[spuff:lost spuff-owner:alice-laptop] ssh-ed25519 AAAA" {
		t.Fatalf("the child swept %q (%v)", b, err)
	}
	if err := sw.Sweep(ctx, provisioning.SweepRequest{Name: "refused"}); err == nil || !strings.Contains(err.Error(), "refused to list firewalls") {
		t.Fatalf("a failed sweep: %v", err)
	}
	if err := build(t, nil).(provisioning.Sweeper).Sweep(ctx, req); !errors.Is(err, provisioning.ErrUnsupported) {
		t.Fatalf("sweep by a provider without one: %v, want ErrUnsupported", err)
	}
}

func TestMissingTokenFailsTheBuild(t *testing.T) {
	t.Setenv(serveEnv, "1")
	t.Setenv(tokenEnv, "")
	_, err := Factory(fakeName, self)(provisioning.Env{Config: &config.Config{}})
	if !errors.Is(err, provisioning.ErrNoCredentials) || !strings.Contains(err.Error(), tokenEnv) {
		t.Fatalf("build without the token: %v, want ErrNoCredentials naming %s", err, tokenEnv)
	}
}

// Cancelling a call ends the child's stdin; the provider sees its context
// cancelled and returns, well before the child would be killed.
func TestCancelStopsTheChild(t *testing.T) {
	p := build(t, nil)
	mark := filepath.Join(t.TempDir(), "mark")
	t.Setenv(markEnv, mark)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Delete(ctx, "block") }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled delete: %v, want context.Canceled", err)
		}
	case <-time.After(cancelGrace / 2):
		t.Fatal("a cancelled call did not return")
	}
	if b, err := os.ReadFile(mark); err != nil || string(b) != "cancelled" {
		t.Fatalf("the child did not see its call cancelled: %q %v", b, err)
	}
}

// A child that crashes answers nothing: the call says so, and its trace
// reaches the parent's log.
func TestCrashedChildIsAnError(t *testing.T) {
	r := &records{level: slog.LevelInfo}
	p := build(t, r.logger())
	_, err := p.Get(context.Background(), "panic")
	if err == nil || !strings.Contains(err.Error(), "ended without answering") {
		t.Fatalf("get that panicked: %v", err)
	}
	if !strings.Contains(r.buf.String(), "a bug in the provider") {
		t.Fatalf("the panic is not in the parent's log:\n%s", r.buf.String())
	}
}

// The child's log records arrive in the parent's log at their level, with
// their attributes; debug ones only when the parent logs debug.
func TestChildLogsReachTheParent(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		r := &records{level: level}
		build(t, r.logger())
		got := r.buf.String()
		if !strings.Contains(got, `level=INFO msg="fake: ready" calls=1`) {
			t.Fatalf("at %v the info record is missing:\n%s", level, got)
		}
		if debug := strings.Contains(got, `level=DEBUG msg="fake: built" home=/h`); debug != (level == slog.LevelDebug) {
			t.Fatalf("at %v the debug record's presence is %v:\n%s", level, debug, got)
		}
	}
}

func TestMissingBinaryIsExplained(t *testing.T) {
	p, err := Factory(fakeName, Beside)(provisioning.Env{})
	if err == nil {
		t.Fatalf("built %v with no %s beside the test binary", p, Binary)
	}
	if !strings.Contains(err.Error(), "reinstall spuff") {
		t.Fatalf("error %v does not say what to do", err)
	}
}
