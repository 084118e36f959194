// Package provisioning is the contract between spuff and the places sheds
// run: a Provider makes, finds and ends machines (a local QEMU VM, a
// DigitalOcean droplet, a Hetzner server), and a registry lets each
// provider add itself from its own folder (provisioning/NAME, one
// Register call in an init). The Manager that runs a shed's lifecycle on
// state.db (DESIGN §8) builds on this contract and knows no provider by name.
//
// A provider never sees a credential of the developer's: its request holds
// public keys and a cloud-init user-data that must stay free of secrets,
// because any process in a cloud VM can read user-data from the metadata
// service. Its API token, where it has one, comes from the host's
// environment through Env.Getenv and goes nowhere else.
package provisioning

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spuff-dev/spuff/app/config"
)

// Label is the key of the label (DigitalOcean: tag) every machine spuff
// makes carries, valued with the shed's name, so that List finds spuff's
// machines and reconcile can name orphans both ways.
const Label = "spuff"

// OwnerLabel names the host user and machine that made the shed (letters,
// digits and dashes only, as both clouds allow in labels and tags), so two
// developers sharing a cloud account do not reconcile each other's sheds.
const OwnerLabel = "spuff-owner"

// State is a machine's state as its provider reports it, in spuff's words.
type State string

const (
	// Pending: the provider is creating or booting it.
	Pending State = "pending"
	// Running: powered on; sshd may not answer yet.
	Running State = "running"
	// Stopped: powered off, disk kept (a stopped cloud VM still bills).
	Stopped State = "stopped"
	// Stopping: on its way to Stopped or to gone.
	Stopping State = "stopping"
	// Failed: the provider gave up on it.
	Failed State = "failed"
	// Unknown: the provider said something spuff does not map.
	Unknown State = "unknown"
)

// Machine is what a provider knows of one machine.
type Machine struct {
	// ID is the provider's identifier, stable for the machine's life.
	ID string `json:"id"`
	// Name is the shed's name (the value of Label).
	Name  string `json:"name"`
	State State  `json:"state"`
	// Status is the provider's own word for the state, for display and errors.
	Status string `json:"status,omitempty"`
	// SSHAddr is host:port where the machine's sshd listens, once known.
	SSHAddr string `json:"ssh_addr,omitempty"`
	// BusURL is where the guest's bus is served, for providers with
	// Capabilities.ServesBus, once it answers.
	BusURL  string            `json:"bus_url,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created,omitzero"`
}

// HostKey is a shed's SSH host key, made on the host before boot.
type HostKey struct {
	// PrivatePEM is the OpenSSH private key. It is the shed's own key, not
	// the developer's; only a provider with Capabilities.PrivateSeed gets it.
	PrivatePEM []byte
	// Public is the authorized_keys form ("ssh-ed25519 AAAA…").
	Public string
}

// CreateRequest is what Create makes a machine from.
type CreateRequest struct {
	// Name is the shed's name (config.ValidShedName).
	Name string
	// Labels are attached to the machine; they include Label and OwnerLabel.
	Labels map[string]string
	// UserData is the cloud-init user-data, the same for every provider
	// (provisioning/cloudinit). It carries public keys only.
	UserData []byte
	// LoginKey is the developer's public key in authorized_keys form, for
	// providers whose API wants a registered key to create a machine.
	LoginKey string
	// HostKey is set only for providers with Capabilities.PrivateSeed.
	HostKey *HostKey
	// Progress, when set, receives short human-readable steps ("writing
	// the seed", "starting QEMU"); the Manager turns them into events.
	Progress func(step string)
}

// Capabilities say what a provider can do beyond the common four calls.
type Capabilities struct {
	// StartStop: Start and Stop keep the machine's disk (local VMs). A
	// provider without it is ended by Delete, since a stopped cloud VM
	// still bills.
	StartStop bool `json:"start_stop"`
	// PrivateSeed: the provider hands the machine its first-boot data
	// privately (a seed disk the host writes), never through a metadata
	// service, so the Manager may give it a host key to pin before boot.
	PrivateSeed bool `json:"private_seed"`
	// Local: the machine runs on this computer.
	Local bool `json:"local"`
	// ServesBus: the provider runs spuff-guest itself and reports its bus
	// as Machine.BusURL; the Manager skips the ssh bootstrap and the host
	// attaches that URL (test providers: a shed that is a local process).
	ServesBus bool `json:"serves_bus,omitempty"`
}

// Provider makes, finds and ends machines in one place.
//
// Create returns once the provider holds the machine, not once it boots;
// the Manager polls Get until State is Running and SSHAddr is set. If
// Create fails after the provider made something, it returns the Machine
// with its ID beside the error (and should delete what it made), so the
// Manager can record it and `spuff down` can clean it.
//
// Get of a machine that no longer exists returns an error wrapping
// ErrNotFound. Delete is idempotent: a machine already gone is no error.
// List returns every machine carrying Label (whatever its value) that this
// provider can see, so reconcile can name orphans.
type Provider interface {
	Name() string
	Capabilities() Capabilities
	Create(ctx context.Context, req CreateRequest) (Machine, error)
	Get(ctx context.Context, id string) (Machine, error)
	Delete(ctx context.Context, id string) error
	List(ctx context.Context) ([]Machine, error)
	// Start and Stop return ErrUnsupported unless Capabilities.StartStop.
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string) error
}

// SweepRequest names what one shed's Create may have left: the shed's
// name, the labels and the login key that Create was given.
type SweepRequest struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels,omitempty"`
	LoginKey string            `json:"login_key,omitempty"` // "" when the host's identity cannot be read now
}

// Sweeper is a Provider whose Create makes things besides the machine
// before the machine exists (a registered login key, a firewall). A Create
// that dies in that window (its process killed, the host's power lost)
// leaves them with no machine for Delete to find them by. Sweep removes
// those things of req's shed and owner (and, for a key, of req's login
// key) that no machine carries; each already gone is no error. The
// Manager calls it only when it finds no machine for the shed at all.
type Sweeper interface {
	Sweep(ctx context.Context, req SweepRequest) error
}

// Errors every provider speaks.
var (
	ErrNotFound    = errors.New("provisioning: no such machine")
	ErrUnsupported = errors.New("provisioning: not supported by this provider")
	// ErrNoCredentials: the provider needs a token the host environment
	// does not hold.
	ErrNoCredentials = errors.New("provisioning: no credentials")
)

// NoStartStop is embedded by providers without Capabilities.StartStop.
type NoStartStop struct{}

// Start is not supported.
func (NoStartStop) Start(context.Context, string) error { return ErrUnsupported }

// Stop is not supported.
func (NoStartStop) Stop(context.Context, string) error { return ErrUnsupported }

// Env is what a provider is built from.
type Env struct {
	Config *config.Config
	// Getenv reads the host's environment: the only source of API tokens.
	Getenv func(string) string
	Logger *slog.Logger
	// Home is spuff's directory (~/.spuff); local providers keep each
	// shed's files under Home/sheds/NAME (0700).
	Home string
	// Cache is spuff's cache (~/.cache/spuff); base images live under
	// Cache/images.
	Cache string
	// HTTPClient, when set, is used for provider APIs (tests point it, and
	// the provider's base URL, at a fake that replays the documented API).
	HTTPClient *http.Client
}

// Factory builds a provider.
type Factory func(Env) (Provider, error)

var registry = struct {
	sync.Mutex
	m map[string]Factory
}{m: map[string]Factory{}}

// Register adds a provider under name. It panics on a duplicate name, as
// two providers answering to one name is a build mistake.
func Register(name string, f Factory) {
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[name]; dup {
		panic(fmt.Sprintf("provisioning: provider %q registered twice", name))
	}
	registry.m[name] = f
}

// Names lists the registered providers, sorted.
func Names() []string {
	registry.Lock()
	defer registry.Unlock()
	names := make([]string, 0, len(registry.m))
	for n := range registry.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New builds the provider registered under name.
func New(name string, env Env) (Provider, error) {
	registry.Lock()
	f, ok := registry.m[name]
	registry.Unlock()
	if !ok {
		return nil, fmt.Errorf("provisioning: no provider %q; this build has %s", name, strings.Join(Names(), ", "))
	}
	if env.Getenv == nil {
		return nil, errors.New("provisioning: Env.Getenv is nil")
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	p, err := f(env)
	if err != nil {
		return nil, fmt.Errorf("provisioning: %s: %w", name, err)
	}
	return p, nil
}

// Labels returns the labels a shed's machine carries.
func Labels(name, owner string) map[string]string {
	l := map[string]string{Label: name}
	if owner != "" {
		l[OwnerLabel] = owner
	}
	return l
}

// Registered reports whether name has a provider in this build.
func Registered(name string) bool { return slices.Contains(Names(), name) }
