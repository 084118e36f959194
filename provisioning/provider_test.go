package provisioning

import (
	"context"
	"errors"
	"strings"
	"testing"
)

type stub struct{ NoStartStop }

func (stub) Name() string               { return "stub" }
func (stub) Capabilities() Capabilities { return Capabilities{} }
func (stub) Create(context.Context, CreateRequest) (Machine, error) {
	return Machine{}, nil
}
func (stub) Get(context.Context, string) (Machine, error) { return Machine{}, ErrNotFound }
func (stub) Delete(context.Context, string) error         { return nil }
func (stub) List(context.Context) ([]Machine, error)      { return nil, nil }

var _ Provider = stub{}

func TestRegistry(t *testing.T) {
	Register("stub-test", func(Env) (Provider, error) { return stub{}, nil })
	if !Registered("stub-test") {
		t.Fatal("a registered provider is not listed")
	}
	p, err := New("stub-test", Env{Getenv: func(string) string { return "" }})
	if err != nil || p.Name() != "stub" {
		t.Fatalf("New = %v, %v", p, err)
	}
	if err := p.Start(context.Background(), "x"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Start without StartStop = %v, want ErrUnsupported", err)
	}
	// The refusal names the providers there are as words, not a Go slice.
	if _, err := New("nope", Env{Getenv: func(string) string { return "" }}); err == nil || !strings.Contains(err.Error(), `"nope"`) ||
		!strings.Contains(err.Error(), "this build has "+strings.Join(Names(), ", ")) || strings.Contains(err.Error(), "[") {
		t.Errorf("New of an unknown provider = %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("a duplicate Register did not panic")
		}
	}()
	Register("stub-test", func(Env) (Provider, error) { return stub{}, nil })
}

func TestLabels(t *testing.T) {
	l := Labels("demo", "alice-laptop")
	if l[Label] != "demo" || l[OwnerLabel] != "alice-laptop" {
		t.Fatalf("Labels = %v", l)
	}
}
