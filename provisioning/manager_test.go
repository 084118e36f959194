package provisioning

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/provisioning/sshconn"
	"github.com/spuff-dev/spuff/provisioning/state"
)

// fakeProvider is an in-memory provider; failAt makes one call fail.
type fakeProvider struct {
	NoStartStop
	mu       sync.Mutex
	ms       map[string]Machine
	n        int
	failAt   string // "create", "get", "delete", "stop"
	startOK  bool
	seed     bool
	hostKey  *HostKey
	known    string // the Manager's known_hosts
	pinned   bool   // whether the seeded key was pinned when Create was called
	rowSeen  bool   // whether the row existed when Create was called
	db       *state.DB
	userData []byte
	loginKey string
	sweeps   []SweepRequest
	// gate, when set, holds Create until it is closed or Create's context
	// ends; entered is closed as Create begins to wait. A Create whose
	// context ends makes its machine anyway and loses the answer, as a
	// cloud API that accepted the request before the client gave up does.
	gate, entered chan struct{}
	// delGate and delEntered do the same for Delete.
	delGate, delEntered chan struct{}
	listHides           bool // List shows no machine, as a cloud's may just after a create
}

func (f *fakeProvider) Name() string { return "fake" }
func (f *fakeProvider) Capabilities() Capabilities {
	return Capabilities{StartStop: f.startOK, PrivateSeed: f.seed, Local: true}
}
func (f *fakeProvider) Create(ctx context.Context, req CreateRequest) (Machine, error) {
	var lost error
	if f.gate != nil {
		close(f.entered)
		select {
		case <-f.gate:
		case <-ctx.Done():
			lost = ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.db.GetShed(ctx, req.Name)
	f.rowSeen = err == nil
	f.userData = req.UserData
	f.loginKey = req.LoginKey
	f.hostKey = req.HostKey
	if req.HostKey != nil {
		if sg, err := ssh.ParsePrivateKey(req.HostKey.PrivatePEM); err == nil {
			f.pinned = sshconn.Pinned(f.known, "spuff-"+req.Name)("127.0.0.1:2222", nil, sg.PublicKey()) == nil
		}
	}
	f.n++
	m := Machine{ID: fmt.Sprintf("m-%d", f.n), Name: req.Name, State: Running, SSHAddr: "127.0.0.1:2222", Labels: req.Labels}
	f.ms[m.ID] = m
	if lost != nil {
		return Machine{}, lost
	}
	if f.failAt == "create" {
		return Machine{ID: m.ID}, errors.New("quota exceeded")
	}
	return m, nil
}
func (f *fakeProvider) Get(_ context.Context, id string) (Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAt == "get" {
		return Machine{}, errors.New("boot hung")
	}
	m, ok := f.ms[id]
	if !ok {
		return Machine{}, ErrNotFound
	}
	return m, nil
}
func (f *fakeProvider) Delete(_ context.Context, id string) error {
	if f.delGate != nil {
		close(f.delEntered)
		<-f.delGate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAt == "delete" {
		return errors.New("api down")
	}
	delete(f.ms, id)
	return nil
}
func (f *fakeProvider) List(context.Context) ([]Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listHides {
		return nil, nil
	}
	var out []Machine
	for _, m := range f.ms {
		out = append(out, m)
	}
	return out, nil
}
func (f *fakeProvider) Sweep(_ context.Context, req SweepRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sweeps = append(f.sweeps, req)
	switch f.failAt {
	case "sweep":
		return errors.New("api down")
	case "sweep-unsupported":
		return fmt.Errorf("fake: nothing to sweep: %w", ErrUnsupported)
	}
	return nil
}
func (f *fakeProvider) Stop(_ context.Context, id string) error {
	if !f.startOK {
		return ErrUnsupported
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAt == "stop" {
		return errors.New("acpi shutdown timed out")
	}
	m := f.ms[id]
	m.State = Stopped
	f.ms[id] = m
	return nil
}
func (f *fakeProvider) Start(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.ms[id]
	m.State = Running
	f.ms[id] = m
	return nil
}

type fakeBoot struct{ err error }

// gatedBoot holds Bootstrap until gate is closed; entered is closed as it
// begins to wait.
type gatedBoot struct{ gate, entered chan struct{} }

func (b gatedBoot) Bootstrap(context.Context, state.Shed, func(string)) (string, error) {
	close(b.entered)
	<-b.gate
	return "x86_64", nil
}

func (b fakeBoot) Bootstrap(_ context.Context, s state.Shed, progress func(string)) (string, error) {
	progress("waiting for cloud-init")
	return "x86_64", b.err
}

func newManager(t *testing.T, boot Bootstrapper) (*Manager, *fakeProvider, *state.DB, *[]Event) {
	t.Helper()
	dbPath := filepath.Join(t.TempDir(), "state.db")
	db, err := state.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fp := &fakeProvider{ms: map[string]Machine{}, db: db}
	var mu sync.Mutex
	events := &[]Event{}
	m, err := NewManager(ManagerOptions{
		DB: db,
		Provider: func(name string) (Provider, error) {
			if name != "fake" {
				return nil, fmt.Errorf("no provider %q", name)
			}
			return fp, nil
		},
		UserData: func(_ context.Context, name, user string) ([]byte, error) {
			return []byte("#cloud-config\n# " + name), nil
		},
		Bootstrap:  boot,
		Audit:      &memAudit{},
		Events:     func(e Event) { mu.Lock(); *events = append(*events, e); mu.Unlock() },
		Owner:      "alice-laptop",
		KnownHosts: filepath.Join(filepath.Dir(dbPath), "known_hosts"),
		Poll:       time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, fp, db, events
}

func TestUpDown(t *testing.T) {
	ctx := context.Background()
	m, fp, db, events := newManager(t, fakeBoot{})
	s, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev", IdleTimeout: new(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !fp.rowSeen {
		t.Error("Create was called before the row was written")
	}
	if s.State != state.Ready || s.ProviderID != "m-1" || s.SSHAddr != "127.0.0.1:2222" || s.Arch != "x86_64" || s.HostKeyAlias != "spuff-demo" {
		t.Fatalf("after up: %+v", s)
	}
	var steps []string
	for _, e := range *events {
		steps = append(steps, e.State)
	}
	if got := strings.Join(steps, " "); !strings.Contains(got, "creating") || !strings.Contains(got, "booting") ||
		!strings.Contains(got, "bootstrapping") || !strings.HasSuffix(got, "ready") {
		t.Errorf("event states: %s", got)
	}
	if _, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"}); err == nil || !strings.Contains(err.Error(), "spuff down demo") {
		t.Errorf("second up: %v", err)
	}
	if err := m.Down(ctx, "demo", false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetShed(ctx, "demo"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("row after down: %v", err)
	}
	if len(fp.ms) != 0 {
		t.Errorf("machines after down: %v", fp.ms)
	}
}

// An up that fails at each stage leaves a failed row with its reason,
// which down removes.
func TestHalfFailedUpIsCleanedByDown(t *testing.T) {
	for _, tc := range []struct{ at, reason string }{
		{"create", "creating the machine: quota exceeded"},
		{"get", "booting: boot hung"},
		{"bootstrap", "bootstrapping: upload failed"},
	} {
		t.Run(tc.at, func(t *testing.T) {
			ctx := context.Background()
			var boot fakeBoot
			if tc.at == "bootstrap" {
				boot.err = errors.New("upload failed")
			}
			m, fp, db, _ := newManager(t, boot)
			fp.failAt = tc.at
			if _, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"}); err == nil || !strings.Contains(err.Error(), "spuff down demo") {
				t.Fatalf("up: %v", err)
			}
			s, err := db.GetShed(ctx, "demo")
			if err != nil || s.State != state.Failed || s.Reason != tc.reason || s.ProviderID != "m-1" {
				t.Fatalf("row: %+v %v, want failed with %q", s, err, tc.reason)
			}
			fp.failAt = ""
			if err := m.Down(ctx, "demo", false); err != nil {
				t.Fatal(err)
			}
			if _, err := db.GetShed(ctx, "demo"); !errors.Is(err, state.ErrNotFound) || len(fp.ms) != 0 {
				t.Fatalf("after down: row %v, machines %v", err, fp.ms)
			}
		})
	}
}

func TestDownForce(t *testing.T) {
	ctx := context.Background()
	m, fp, db, _ := newManager(t, fakeBoot{})
	if _, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"}); err != nil {
		t.Fatal(err)
	}
	fp.failAt = "delete"
	if err := m.Down(ctx, "demo", false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("down with a failing provider: %v", err)
	}
	if s, err := db.GetShed(ctx, "demo"); err != nil || s.State != state.Failed || !strings.Contains(s.Reason, "api down") {
		t.Fatalf("row after a failed down: %+v %v", s, err)
	}
	if err := m.Down(ctx, "demo", true); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetShed(ctx, "demo"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("row after down --force: %v", err)
	}
}

func TestListNamesOrphansBothWays(t *testing.T) {
	ctx := context.Background()
	m, fp, _, _ := newManager(t, fakeBoot{})
	for _, n := range []string{"kept", "lost"} {
		if _, err := m.Up(ctx, UpRequest{Name: n, Provider: "fake", User: "dev"}); err != nil {
			t.Fatal(err)
		}
	}
	// The machine of "lost" disappears (QEMU killed by hand); a machine
	// no row knows appears; another owner's machine is not ours to name.
	delete(fp.ms, "m-2")
	fp.ms["x"] = Machine{ID: "x", Name: "stray", State: Running, Labels: Labels("stray", "alice-laptop")}
	fp.ms["y"] = Machine{ID: "y", Name: "bobs", State: Running, Labels: Labels("bobs", "bob-desktop")}
	out, _, err := m.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Listed{}
	for _, l := range out {
		got[l.Name] = l
	}
	if l := got["kept"]; l.State != state.Ready || l.Orphan != "" || l.Machine == nil {
		t.Errorf("kept: %+v", l)
	}
	if l := got["lost"]; l.State != state.Failed || l.Orphan != "no machine" || !strings.Contains(l.Reason, "gone") {
		t.Errorf("lost: %+v", l)
	}
	if l := got["stray"]; l.Orphan != "no row" || l.ProviderID != "x" {
		t.Errorf("stray: %+v", l)
	}
	if _, ok := got["bobs"]; ok {
		t.Errorf("listed another owner's machine")
	}
}

func TestStopStartAndEnd(t *testing.T) {
	ctx := context.Background()
	m, fp, db, _ := newManager(t, fakeBoot{})
	if _, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(ctx, "demo"); err == nil || !strings.Contains(err.Error(), "spuff down demo") {
		t.Fatalf("stop without StartStop: %v", err)
	}
	// Without StartStop the idle hook destroys.
	if err := m.End(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetShed(ctx, "demo"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("row after End of a cloud-like shed: %v", err)
	}
	fp.startOK = true
	if _, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"}); err != nil {
		t.Fatal(err)
	}
	if err := m.End(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.GetShed(ctx, "demo"); s.State != state.Stopped {
		t.Fatalf("after End of a local shed: %+v", s)
	}
	if err := m.Start(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.GetShed(ctx, "demo"); s.State != state.Ready {
		t.Fatalf("after start: %+v", s)
	}
}

// A start of a running shed, a stop of a stopped one, and either while a
// step is under way are refused, and leave the row as it was.
func TestPowerRefusesWhatIsDoneOrUnderWay(t *testing.T) {
	ctx := context.Background()
	m, fp, db, _ := newManager(t, fakeBoot{})
	fp.startOK = true
	if _, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"}); err != nil {
		t.Fatal(err)
	}
	expect := func(what string, err error, words, st string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), words) {
			t.Fatalf("%s: %v, want a refusal saying %q", what, err, words)
		}
		if s, _ := db.GetShed(ctx, "demo"); s.State != st {
			t.Fatalf("%s left the shed %s, want %s", what, s.State, st)
		}
	}
	expect("start of a ready shed", m.Start(ctx, "demo"), "already running", state.Ready)
	if err := m.Stop(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	expect("stop of a stopped shed", m.Stop(ctx, "demo"), "already stopped", state.Stopped)
	s, _ := db.GetShed(ctx, "demo")
	s.State = state.Bootstrapping
	if err := db.UpdateShed(ctx, s); err != nil {
		t.Fatal(err)
	}
	expect("stop while bootstrapping", m.Stop(ctx, "demo"), "is bootstrapping; wait", state.Bootstrapping)
	expect("start while bootstrapping", m.Start(ctx, "demo"), "is bootstrapping; wait", state.Bootstrapping)
}

// A provider with a private seed gets a host key the host made, pinned
// under the shed's alias before the provider is called; down unpins it.
func TestHostKeyPinnedBeforeBoot(t *testing.T) {
	ctx := context.Background()
	m, fp, db, _ := newManager(t, fakeBoot{})
	fp.seed, fp.known = true, m.o.KnownHosts
	s, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if fp.hostKey == nil || !strings.Contains(string(fp.hostKey.PrivatePEM), "PRIVATE KEY") {
		t.Fatalf("the provider got no host key: %+v", fp.hostKey)
	}
	if !fp.pinned {
		t.Fatal("the host key was not pinned when the provider was called")
	}
	signer, err := ssh.ParsePrivateKey(fp.hostKey.PrivatePEM)
	if err != nil {
		t.Fatal(err)
	}
	if row, _ := db.GetShed(ctx, "demo"); row.HostKey != fp.hostKey.Public || row.HostKey == "" || s.HostKeyAlias != "spuff-demo" {
		t.Fatalf("row host key %q, provider's %q", row.HostKey, fp.hostKey.Public)
	}
	check := sshconn.Pinned(m.o.KnownHosts, "spuff-demo")
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}
	if err := check("127.0.0.1:2222", addr, signer.PublicKey()); err != nil {
		t.Fatalf("the seeded key is not pinned: %v", err)
	}
	if err := check("127.0.0.1:2222", addr, newPub(t)); err == nil {
		t.Fatal("another key passed the pin")
	}
	if err := m.Down(ctx, "demo", false); err != nil {
		t.Fatal(err)
	}
	if err := check("127.0.0.1:2222", addr, signer.PublicKey()); err == nil {
		t.Fatal("the key stayed pinned after down")
	}
	// A provider without a private seed gets no host key.
	fp.seed = false
	if _, err := m.Up(ctx, UpRequest{Name: "cloud", Provider: "fake", User: "dev"}); err != nil || fp.hostKey != nil {
		t.Fatalf("up without a private seed: %v, host key %+v", err, fp.hostKey)
	}
}

func newPub(t *testing.T) ssh.PublicKey {
	t.Helper()
	_, pub, err := newHostKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// A crash between Create and the row's update leaves a creating row with no
// machine id beside a labelled machine: List adopts the machine into the row
// (no orphan either way) and Down deletes it.
func TestCrashBetweenCreateAndRowUpdate(t *testing.T) {
	ctx := context.Background()
	m, fp, db, _ := newManager(t, fakeBoot{})
	if err := db.CreateShed(ctx, state.Shed{Name: "demo", Provider: "fake", State: state.Creating, User: "dev", HostKeyAlias: "spuff-demo"}); err != nil {
		t.Fatal(err)
	}
	fp.ms["m-7"] = Machine{ID: "m-7", Name: "demo", State: Running, Labels: Labels("demo", "alice-laptop")}
	fp.ms["m-8"] = Machine{ID: "m-8", Name: "other", State: Running, Labels: Labels("other", "alice-laptop")}
	ls, _, err := m.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Listed{}
	for _, l := range ls {
		got[l.Name] = l
	}
	if d := got["demo"]; d.ProviderID != "m-7" || d.Machine == nil || d.Orphan != "" || len(ls) != 2 {
		t.Fatalf("list after the crash: %+v", ls)
	}
	if got["other"].Orphan != "no row" {
		t.Errorf("an unknown labelled machine: %+v", got["other"])
	}
	if s, _ := db.GetShed(ctx, "demo"); s.ProviderID != "m-7" {
		t.Errorf("the adopted id is not in state.db: %+v", s)
	}
	// Down of a row whose id never arrived still ends the labelled machine.
	if err := db.UpdateShed(ctx, state.Shed{Name: "demo", Provider: "fake", State: state.Creating, User: "dev", HostKeyAlias: "spuff-demo"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Down(ctx, "demo", false); err != nil {
		t.Fatal(err)
	}
	if _, ok := fp.ms["m-7"]; ok {
		t.Error("down left the labelled machine of a row without an id")
	}
	if _, ok := fp.ms["m-8"]; !ok {
		t.Error("down deleted another shed's machine")
	}
}

// Down of a row with no machine id, for which the provider lists no
// machine either, sweeps what its Create may have left (a key, a
// firewall) with the shed's name, labels and login key; a row whose
// machine is found or known is not swept. A sweep that fails keeps the
// row, as a failed delete does, unless forced.
func TestDownSweepsWhatACreateLeftWithoutAMachine(t *testing.T) {
	ctx := context.Background()
	m, fp, db, events := newManager(t, fakeBoot{})
	key, keyErr := "ssh-ed25519 AAAAC3 alice@laptop", error(nil)
	m.o.LoginKey = func() (string, error) { return key, keyErr }
	row := func(name, id string) {
		t.Helper()
		if err := db.CreateShed(ctx, state.Shed{Name: name, Provider: "fake", ProviderID: id, State: state.Failed, User: "dev", HostKeyAlias: "spuff-" + name}); err != nil {
			t.Fatal(err)
		}
	}
	row("lost", "")
	row("adopted", "")
	fp.ms["m-7"] = Machine{ID: "m-7", Name: "adopted", State: Running, Labels: Labels("adopted", "alice-laptop")}
	row("known", "m-9")
	for _, name := range []string{"lost", "adopted", "known"} {
		if err := m.Down(ctx, name, false); err != nil {
			t.Fatalf("down %s: %v", name, err)
		}
	}
	want := []SweepRequest{{Name: "lost", Labels: Labels("lost", "alice-laptop"), LoginKey: key}}
	if fmt.Sprint(fp.sweeps) != fmt.Sprint(want) {
		t.Fatalf("sweeps %+v, want %+v", fp.sweeps, want)
	}
	// The down that sweeps says so, as a step of its own.
	swept := map[string]bool{}
	for _, e := range *events {
		if strings.Contains(e.Step, "removing what an interrupted up left") {
			swept[e.Shed] = e.State == state.Destroying
		}
	}
	if len(swept) != 1 || !swept["lost"] {
		t.Fatalf("sweep steps by shed: %v, want one for lost while destroying", swept)
	}

	fp.sweeps, fp.failAt = nil, "sweep"
	row("lost", "")
	if err := m.Down(ctx, "lost", false); err == nil || !strings.Contains(err.Error(), "api down") {
		t.Fatalf("down whose sweep failed: %v", err)
	}
	if s, err := db.GetShed(ctx, "lost"); err != nil || s.State != state.Failed || !strings.Contains(s.Reason, "api down") {
		t.Fatalf("the row after a failed sweep: %+v %v", s, err)
	}
	if err := m.Down(ctx, "lost", true); err != nil {
		t.Fatalf("down --force after a failed sweep: %v", err)
	}

	// A provider with nothing to sweep, and a host whose identity cannot
	// be read now (the sweep still runs, without a key to look for).
	fp.sweeps, fp.failAt, keyErr = nil, "sweep-unsupported", errors.New("agent locked")
	row("lost", "")
	if err := m.Down(ctx, "lost", false); err != nil {
		t.Fatalf("down by a provider that sweeps nothing: %v", err)
	}
	if len(fp.sweeps) != 1 || fp.sweeps[0].LoginKey != "" {
		t.Fatalf("sweep without a readable identity: %+v", fp.sweeps)
	}
}

// upHeldAtCreate starts an up of name whose Create fp holds (until
// fp.gate is closed or the up is stopped); it returns once Create waits,
// and the up's error arrives on the channel.
func upHeldAtCreate(m *Manager, fp *fakeProvider, name string) <-chan error {
	fp.gate, fp.entered = make(chan struct{}), make(chan struct{})
	upErr := make(chan error, 1)
	go func() {
		_, err := m.Up(context.Background(), UpRequest{Name: name, Provider: "fake", User: "dev"})
		upErr <- err
	}()
	<-fp.entered
	return upErr
}

// A down of a shed whose up is under way (the developer gave up on it)
// stops that up, waits for it, and then removes all it made: nothing is
// left at the provider to bill, even a machine whose create answer the up
// never got, and the up's caller hears that a down stopped it.
func TestDownStopsTheUpUnderWay(t *testing.T) {
	ctx := context.Background()
	m, fp, db, events := newManager(t, fakeBoot{})
	upErr := upHeldAtCreate(m, fp, "demo")
	if err := m.Start(ctx, "demo"); err == nil {
		t.Error("a start beside the up under way was not refused")
	}
	if err := m.Down(ctx, "demo", false); err != nil {
		t.Fatalf("down: %v", err)
	}
	var err error
	select {
	case err = <-upErr:
	default:
		// The down did not wait for the up: let it finish, to see what it leaves.
		close(fp.gate)
		err = <-upErr
	}
	if err == nil || !strings.Contains(err.Error(), "stopped by `spuff down`") || strings.Count(err.Error(), "provisioning:") > 1 {
		t.Errorf("the up's error: %v, want one saying a down stopped it, with its package named once", err)
	}
	fp.mu.Lock()
	left := len(fp.ms)
	fp.mu.Unlock()
	if left != 0 {
		t.Errorf("machines at the provider after the down: %d", left)
	}
	if s, err := db.GetShed(ctx, "demo"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("the row after the down: %+v %v", s, err)
	}
	stopped := false
	for _, e := range *events {
		stopped = stopped || (e.State == state.Destroying && strings.Contains(e.Step, "stopping the up"))
	}
	if !stopped {
		t.Error("the down did not say it was stopping the up")
	}
}

// Beside an action under way on a shed, another is refused with what to
// do, and a second down is refused, not run twice.
func TestActionsBesideOneUnderWayAreRefused(t *testing.T) {
	ctx := context.Background()
	m, fp, _, _ := newManager(t, fakeBoot{})
	fp.startOK = true
	upErr := upHeldAtCreate(m, fp, "demo")
	for what, err := range map[string]error{
		"a second up": func() error { _, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"}); return err }(),
		"a stop":      m.Stop(ctx, "demo"),
	} {
		if err == nil || !strings.Contains(err.Error(), "`spuff up demo` is under way") {
			t.Errorf("%s beside the up: %v", what, err)
		}
	}
	close(fp.gate)
	if err := <-upErr; err != nil {
		t.Fatal(err)
	}

	fp.delGate, fp.delEntered = make(chan struct{}), make(chan struct{})
	downErr := make(chan error, 1)
	go func() { downErr <- m.Down(ctx, "demo", false) }()
	<-fp.delEntered
	if err := m.Down(ctx, "demo", false); err == nil || !strings.Contains(err.Error(), "demo is being removed") {
		t.Errorf("a second down: %v", err)
	}
	if err := m.Start(ctx, "demo"); err == nil || !strings.Contains(err.Error(), "demo is being removed") {
		t.Errorf("a start beside the down: %v", err)
	}
	close(fp.delGate)
	if err := <-downErr; err != nil {
		t.Fatal(err)
	}
	if err := m.Down(ctx, "demo", false); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("a down after the down: %v", err)
	}
}

// A list while an up is under way reports the row but does not rewrite
// it: the up owns it, and a verdict from a provider that does not list the
// new machine yet would fail a shed that is about to be ready.
func TestListLeavesARowUnderWayAlone(t *testing.T) {
	ctx := context.Background()
	boot := gatedBoot{gate: make(chan struct{}), entered: make(chan struct{})}
	m, fp, db, _ := newManager(t, boot)
	upErr := make(chan error, 1)
	go func() {
		_, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"})
		upErr <- err
	}()
	<-boot.entered
	fp.mu.Lock()
	fp.listHides = true
	fp.mu.Unlock()
	if _, _, err := m.List(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := db.GetShed(ctx, "demo")
	close(boot.gate)
	if uerr := <-upErr; uerr != nil {
		t.Fatal(uerr)
	}
	if err != nil || s.State != state.Bootstrapping || s.Reason != "" {
		t.Fatalf("the row under way after a list: %+v %v, want it bootstrapping still", s, err)
	}
}

// Quit stops the up under way, which fails at once with its own row and
// audit line (not a row left mid-step for the next start), lets a down
// under way finish, waits no longer than its context, and refuses any new
// action.
func TestQuitStopsWhatIsUnderWay(t *testing.T) {
	ctx := context.Background()
	m, fp, db, _ := newManager(t, fakeBoot{})
	aud := m.o.Audit.(*memAudit)
	upErr := upHeldAtCreate(m, fp, "demo")
	if err := db.CreateShed(ctx, state.Shed{Name: "old", Provider: "fake", ProviderID: "m-9", State: state.Failed, User: "dev", HostKeyAlias: "spuff-old"}); err != nil {
		t.Fatal(err)
	}
	fp.delGate, fp.delEntered = make(chan struct{}), make(chan struct{})
	downErr := make(chan error, 1)
	go func() { downErr <- m.Down(ctx, "old", false) }()
	<-fp.delEntered

	qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := m.Quit(qctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("quit with a down still at work: %v, want it to give up when its context ends", err)
	}
	select {
	case err := <-upErr:
		if err == nil || !strings.Contains(err.Error(), "spuff-app quit") || !strings.Contains(err.Error(), "spuff down demo") || strings.Count(err.Error(), "provisioning:") > 1 {
			t.Errorf("the up's error: %v, want one saying spuff-app quit and how to remove the shed, with its package named once", err)
		}
	default:
		t.Fatal("quit did not stop the up under way")
	}
	// The reason is shown as it is (spuff list, the tray): no package names.
	if s, err := db.GetShed(ctx, "demo"); err != nil || s.State != state.Failed || s.Reason != "creating the machine: spuff-app quit" {
		t.Errorf("the row of the stopped up: %+v %v", s, err)
	}
	lines := aud.take()
	if len(lines) != 1 || lines[0].Op != OpUp || lines[0].Result != ResultError || !strings.Contains(lines[0].Detail, "spuff-app quit") {
		t.Errorf("audit lines at quit: %+v, want the up's own error line", lines)
	}
	if err := m.Start(ctx, "demo"); err == nil || !strings.Contains(err.Error(), "quitting") {
		t.Errorf("a start after quit: %v", err)
	}
	close(fp.delGate)
	if err := <-downErr; err != nil {
		t.Errorf("the down under way at quit: %v, want it finished", err)
	}
}

// The host identity's public key reaches Create, for providers whose API
// registers a login key.
func TestLoginKeyReachesCreate(t *testing.T) {
	m, fp, _, _ := newManager(t, fakeBoot{})
	m.o.LoginKey = func() (string, error) { return "ssh-ed25519 AAAAlogin dev", nil }
	if _, err := m.Up(context.Background(), UpRequest{Name: "demo", Provider: "fake", User: "dev"}); err != nil {
		t.Fatal(err)
	}
	if fp.loginKey != "ssh-ed25519 AAAAlogin dev" {
		t.Errorf("Create's login key: %q", fp.loginKey)
	}
}

// memAudit keeps the lines it is given; err makes every write fail.
type memAudit struct {
	mu    sync.Mutex
	lines []AuditLine
	err   error
}

func (a *memAudit) Audit(_ context.Context, l AuditLine) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	a.lines = append(a.lines, l)
	return nil
}

func (a *memAudit) take() []AuditLine {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.lines
	a.lines = nil
	return l
}

// Every lifecycle action writes one provision line: ok with the provider,
// denied when refused without touching a machine, error with the provider
// and the reason.
func TestLifecycleIsAudited(t *testing.T) {
	ctx := context.Background()
	m, fp, _, _ := newManager(t, fakeBoot{})
	a := m.o.Audit.(*memAudit)
	want := func(what string, ls ...AuditLine) {
		t.Helper()
		got := a.take()
		if fmt.Sprint(got) != fmt.Sprint(ls) {
			t.Errorf("%s: audit lines\n got %v\nwant %v", what, got, ls)
		}
	}
	if _, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"}); err != nil {
		t.Fatal(err)
	}
	want("up", AuditLine{"demo", OpUp, ResultOK, "fake"})
	if _, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"}); err == nil {
		t.Fatal("a second up of demo succeeded")
	}
	want("up of a taken name", AuditLine{"demo", OpUp, ResultDenied, `fake: provisioning: shed "demo" is ready; ` + "`spuff ssh demo` logs in, or `spuff down demo` first to make it anew"})
	if err := m.Stop(ctx, "demo"); err == nil {
		t.Fatal("stop without StartStop succeeded")
	}
	want("stop without StartStop", AuditLine{"demo", OpStop, ResultDenied, "fake: provisioning: fake sheds cannot be stopped and started (a stopped cloud VM still bills); `spuff down demo` ends it"})
	fp.startOK = true
	if err := m.Stop(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	want("stop, start", AuditLine{"demo", OpStop, ResultOK, "fake"}, AuditLine{"demo", OpStart, ResultOK, "fake"})
	fp.failAt = "delete"
	if err := m.Down(ctx, "demo", false); err == nil {
		t.Fatal("down with a failing provider succeeded")
	}
	want("failed down", AuditLine{"demo", OpDown, ResultError, "fake: destroying: api down"})
	fp.failAt = ""
	if err := m.Down(ctx, "demo", false); err != nil {
		t.Fatal(err)
	}
	want("down", AuditLine{"demo", OpDown, ResultOK, "fake"})
	fp.failAt = "get"
	if _, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"}); err == nil {
		t.Fatal("up with a hung boot succeeded")
	}
	want("failed up", AuditLine{"demo", OpUp, ResultError, "fake: booting: boot hung"})
	if _, err := m.Up(ctx, UpRequest{Name: "x", Provider: "nope", User: "dev"}); err == nil {
		t.Fatal("up with an unknown provider succeeded")
	}
	want("unknown provider", AuditLine{"x", OpUp, ResultError, `nope: no provider "nope"`})
	if err := m.Down(ctx, "never", false); err == nil {
		t.Fatal("down of an unknown shed succeeded")
	}
	if got := a.take(); len(got) != 1 || got[0].Op != OpDown || got[0].Result != ResultError || got[0].Shed != "never" {
		t.Errorf("down of an unknown shed: %v", got)
	}
}

// A line that cannot be written is never silent: the action's caller gets
// the audit error.
func TestAuditFailureIsReported(t *testing.T) {
	m, _, _, _ := newManager(t, fakeBoot{})
	m.o.Audit.(*memAudit).err = errors.New("disk full")
	_, err := m.Up(context.Background(), UpRequest{Name: "demo", Provider: "fake", User: "dev"})
	if err == nil || !strings.Contains(err.Error(), "audit line of up demo was not written: disk full") {
		t.Fatalf("up with a failing audit log: %v", err)
	}
}

// A machine its provider reports failed (QEMU killed by hand) makes a
// ready row failed with the provider's words, not left ready or stopped.
func TestListMarksAFailedMachineFailed(t *testing.T) {
	ctx := context.Background()
	m, fp, db, _ := newManager(t, fakeBoot{})
	fp.startOK = true
	if _, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"}); err != nil {
		t.Fatal(err)
	}
	mc := fp.ms["m-1"]
	mc.State, mc.Status = Failed, "QEMU ended without a clean shutdown"
	fp.ms["m-1"] = mc
	out, _, err := m.List(ctx)
	if err != nil || len(out) != 1 {
		t.Fatalf("List = %+v, %v", out, err)
	}
	if l := out[0]; l.State != state.Failed || !strings.Contains(l.Reason, "without a clean shutdown") || l.Orphan != "" {
		t.Fatalf("demo after its machine failed: %+v", l)
	}
	if s, _ := db.GetShed(ctx, "demo"); s.State != state.Failed {
		t.Fatalf("the row after List: %+v", s)
	}
	// Booted again, it is bootstrapped again and ready.
	if err := m.Start(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.GetShed(ctx, "demo"); s.State != state.Ready || s.Reason != "" {
		t.Fatalf("after start: %+v", s)
	}
}

// A provider spuff cannot ask for want of credentials is named in list's
// notes only when a shed of it exists: a developer who uses only local
// sheds is not told about cloud tokens at every `spuff list`.
func TestListIsQuietAboutAnUnusedProviderWithoutCredentials(t *testing.T) {
	ctx := context.Background()
	Register("nocreds-test", func(Env) (Provider, error) { return nil, errors.New("unused") })
	m, _, db, _ := newManager(t, fakeBoot{})
	inner := m.o.Provider
	m.o.Provider = func(name string) (Provider, error) {
		if name == "nocreds-test" {
			return nil, fmt.Errorf("nocreds: no API token: set NOCREDS_TOKEN: %w", ErrNoCredentials)
		}
		return inner(name)
	}
	if _, notes, err := m.List(ctx); err != nil || slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "NOCREDS_TOKEN") }) {
		t.Fatalf("List with no shed on the provider: notes %q, %v", notes, err)
	}
	if err := db.CreateShed(ctx, state.Shed{Name: "far", Provider: "nocreds-test", State: state.Ready, User: "dev"}); err != nil {
		t.Fatal(err)
	}
	if _, notes, err := m.List(ctx); err != nil || !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "NOCREDS_TOKEN") }) {
		t.Fatalf("List with a shed on the provider does not say why it was not asked: notes %q, %v", notes, err)
	}
}

// meetingProvider's List returns only once every provider in its group is
// being listed, so a Manager that asks them one at a time is caught (each
// gives up after a while and says so).
type meetingProvider struct {
	*fakeProvider
	meet *sync.WaitGroup
}

func (p meetingProvider) List(ctx context.Context) ([]Machine, error) {
	p.meet.Done()
	met := make(chan struct{})
	go func() { p.meet.Wait(); close(met) }()
	select {
	case <-met:
		return nil, nil
	case <-time.After(10 * time.Second):
		return nil, errors.New("listed one at a time")
	}
}

// Every provider is asked at the same time: `spuff list` with two clouds
// waits for the slower one, not for both in turn.
func TestListAsksEveryProviderAtOnce(t *testing.T) {
	ctx := context.Background()
	m, fp, db, _ := newManager(t, fakeBoot{})
	var meet sync.WaitGroup
	meet.Add(2)
	inner := m.o.Provider
	m.o.Provider = func(name string) (Provider, error) {
		if strings.HasPrefix(name, "meet-") {
			return meetingProvider{fp, &meet}, nil
		}
		return inner(name)
	}
	for _, p := range []string{"meet-a", "meet-b"} {
		if err := db.CreateShed(ctx, state.Shed{Name: "on-" + p, Provider: p, State: state.Ready, User: "dev"}); err != nil {
			t.Fatal(err)
		}
	}
	_, notes, err := m.List(ctx)
	if err != nil || slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "one at a time") }) {
		t.Fatalf("List: notes %q, %v", notes, err)
	}
}

// A row left mid-step by a spuff-app that stopped (a crash, a reboot) is
// no step under way: after MarkInterrupted it is failed, saying what was
// interrupted and what to run, and start, stop and down take it again.
// The rows no step was under way for are left as they are.
func TestMarkInterruptedUnsticksRowsLeftMidStep(t *testing.T) {
	ctx := context.Background()
	m, fp, db, _ := newManager(t, fakeBoot{})
	fp.startOK = true
	rows := map[string]string{
		"creating": state.Creating, "booting": state.Booting, "bootstrapping": state.Bootstrapping,
		"starting": state.Starting, "stopping": state.Stopping, "destroying": state.Destroying,
		"ready": state.Ready, "stopped": state.Stopped, "failed": state.Failed,
	}
	for name, st := range rows {
		id := "m-" + name
		if name == "creating" {
			id = "" // the crash came before Create answered
		}
		if err := db.CreateShed(ctx, state.Shed{Name: name, Provider: "fake", ProviderID: id, State: st, Reason: "before", User: "dev", HostKeyAlias: "spuff-" + name}); err != nil {
			t.Fatal(err)
		}
		if id != "" {
			fp.ms[id] = Machine{ID: id, Name: name, State: Running, SSHAddr: "127.0.0.1:22", Labels: Labels(name, "alice-laptop")}
		}
	}
	if err := m.Start(ctx, "starting"); err == nil || !strings.Contains(err.Error(), "wait") {
		t.Fatalf("start of a row left starting, before MarkInterrupted: %v, want a refusal", err)
	}
	m.o.Audit.(*memAudit).take()
	if err := m.MarkInterrupted(ctx); err != nil {
		t.Fatal(err)
	}
	// The action a crash cut short gets the line it never wrote.
	wantOp := map[string]string{"creating": OpUp, "booting": OpUp, "bootstrapping": OpUp, "starting": OpStart, "stopping": OpStop, "destroying": OpDown}
	lines := m.o.Audit.(*memAudit).take()
	for _, l := range lines {
		if l.Op != wantOp[l.Shed] || l.Result != ResultError || !strings.HasPrefix(l.Detail, "fake: spuff-app stopped while it was "+rows[l.Shed]) {
			t.Errorf("audit line %+v, want %s error saying spuff-app stopped while it was %s", l, wantOp[l.Shed], rows[l.Shed])
		}
	}
	if len(lines) != len(wantOp) {
		t.Errorf("%d audit lines, want one per row left mid-step (%d): %+v", len(lines), len(wantOp), lines)
	}
	for name, st := range rows {
		s, err := db.GetShed(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		switch st {
		case state.Ready, state.Stopped, state.Failed:
			if s.State != st || s.Reason != "before" {
				t.Errorf("%s: %s (%q), want it untouched", name, s.State, s.Reason)
			}
			continue
		}
		if s.State != state.Failed || !strings.Contains(s.Reason, "spuff-app stopped while") || !strings.Contains(s.Reason, st) ||
			!strings.Contains(s.Reason, "spuff down "+name) {
			t.Errorf("%s: %s (%q), want failed, saying spuff-app stopped while it was %s and how to remove it", name, s.State, s.Reason, st)
		}
	}
	if err := m.Start(ctx, "starting"); err != nil {
		t.Fatalf("start of an interrupted start: %v", err)
	}
	if err := m.Stop(ctx, "stopping"); err != nil {
		t.Fatalf("stop of an interrupted stop: %v", err)
	}
	if err := m.Down(ctx, "destroying", false); err != nil {
		t.Fatalf("down of an interrupted down: %v", err)
	}
	if err := m.Down(ctx, "creating", false); err != nil {
		t.Fatalf("down of an interrupted up: %v", err)
	}
}

// An up of a name that has a shed is refused with what to do for the state
// that shed is in: log in to a ready one, start a stopped one, remove a
// failed one first.
func TestUpOfATakenNameSaysWhatToDo(t *testing.T) {
	ctx := context.Background()
	m, fp, _, _ := newManager(t, fakeBoot{})
	fp.startOK = true
	again := func(name, want string) {
		t.Helper()
		_, err := m.Up(ctx, UpRequest{Name: name, Provider: "fake", User: "dev"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("up of %s again: %v, want %q", name, err, want)
		}
	}
	if _, err := m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"}); err != nil {
		t.Fatal(err)
	}
	again("demo", `provisioning: shed "demo" is ready; `+"`spuff ssh demo` logs in, or `spuff down demo` first to make it anew")
	if err := m.Stop(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	again("demo", `provisioning: shed "demo" is stopped; `+"`spuff start demo` starts it")
	fp.mu.Lock()
	fp.failAt = "create"
	fp.mu.Unlock()
	if _, err := m.Up(ctx, UpRequest{Name: "broken", Provider: "fake", User: "dev"}); err == nil {
		t.Fatal("an up whose create fails succeeded")
	}
	fp.mu.Lock()
	fp.failAt = ""
	fp.mu.Unlock()
	again("broken", `provisioning: shed "broken" failed (creating the machine: `)
	again("broken", "; `spuff down broken` removes what is left, then `spuff up broken` makes it anew")

	// A shed that was made once keeps its disk through a failed start or
	// stop: start tries again before down loses it.
	if err := m.Start(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	fp.mu.Lock()
	fp.failAt = "stop"
	fp.mu.Unlock()
	if err := m.Stop(ctx, "demo"); err == nil {
		t.Fatal("a stop that fails succeeded")
	}
	fp.mu.Lock()
	fp.failAt = ""
	fp.mu.Unlock()
	again("demo", `provisioning: shed "demo" failed (stopping: `)
	again("demo", "; `spuff start demo` tries again, or `spuff down demo` removes it")

	// A reason that already says what to run is not followed by more.
	s, err := m.o.DB.GetShed(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	s.State = state.Stopping
	if err := m.o.DB.UpdateShed(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := m.MarkInterrupted(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = m.Up(ctx, UpRequest{Name: "demo", Provider: "fake", User: "dev"})
	if err == nil || strings.Count(err.Error(), "`spuff start demo`") != 1 || !strings.HasSuffix(err.Error(), "removes it)") {
		t.Errorf("up of an interrupted shed: %v, want its reason's advice once", err)
	}
}
