package control

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/app/control/api"
)

type fakeProvisioner struct{ calls []string }

func (f *fakeProvisioner) Up(_ context.Context, req api.UpRequest) (api.MadeShed, error) {
	f.calls = append(f.calls, "up "+req.Name+" "+req.Provider)
	if req.Name == "taken" {
		return api.MadeShed{}, errors.New("provisioning: a shed named \"taken\" exists")
	}
	return api.MadeShed{Name: req.Name, Provider: req.Provider, State: "ready", Addr: "127.0.0.1:2222"}, nil
}
func (f *fakeProvisioner) Down(_ context.Context, name string, force bool) error {
	if force {
		name += " --force"
	}
	f.calls = append(f.calls, "down "+name)
	return nil
}
func (f *fakeProvisioner) Start(_ context.Context, name string) (api.MadeShed, error) {
	f.calls = append(f.calls, "start "+name)
	return api.MadeShed{Name: name, State: "ready"}, nil
}
func (f *fakeProvisioner) Stop(_ context.Context, name string) error {
	f.calls = append(f.calls, "stop "+name)
	return errors.New("provisioning: digitalocean sheds cannot be stopped")
}
func (f *fakeProvisioner) List(context.Context) (api.MadeList, error) {
	f.calls = append(f.calls, "list")
	return api.MadeList{Sheds: []api.MadeShed{{Name: "demo", Provider: "qemu", State: "ready"}, {Name: "lost", Provider: "hetzner", Orphan: "no row"}}}, nil
}
func (f *fakeProvisioner) Rows(context.Context) (api.MadeList, error) {
	f.calls = append(f.calls, "rows")
	return api.MadeList{Sheds: []api.MadeShed{{Name: "demo", Provider: "qemu", State: "ready"}}}, nil
}

func TestMadeRoutes(t *testing.T) {
	c, _, _, _ := serve(t)
	ctx := context.Background()
	m, err := c.Up(ctx, api.UpRequest{Name: "demo", Provider: "qemu"})
	if err != nil || m.State != "ready" || m.Addr != "127.0.0.1:2222" {
		t.Fatalf("up: %+v %v", m, err)
	}
	if _, err := c.Up(ctx, api.UpRequest{Name: "taken"}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("up of a taken name: %v", err)
	}
	if err := c.Down(ctx, "demo", true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx, "demo"); err == nil || !strings.Contains(err.Error(), "cannot be stopped") {
		t.Fatalf("stop's error: %v", err)
	}
	l, err := c.Made(ctx)
	if err != nil || len(l.Sheds) != 2 || l.Sheds[1].Orphan != "no row" {
		t.Fatalf("made: %+v %v", l, err)
	}
	if l, err = c.MadeRows(ctx); err != nil || len(l.Sheds) != 1 || l.Sheds[0].Name != "demo" {
		t.Fatalf("made rows: %+v %v", l, err)
	}
	if err := c.do(ctx, "POST", "/v1/up", map[string]any{"name": "x", "role": "admin"}, nil); err == nil {
		t.Error("an up body with an unknown field was accepted")
	}
}
