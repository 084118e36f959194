// Package dockerhelper is the docker credential helper of a shed: a
// credentials.Helper whose get and list go over the guest daemon's local
// socket to the host, which answers from its own docker logins for the
// registries the shed is allowed. Nothing is ever stored in the shed.
package dockerhelper

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/spuff-dev/spuff/guest/bus"
)

// DefaultSocket is the guest daemon's local socket (DESIGN §7).
const DefaultSocket = "/run/spuff/guest.sock"

// EnvSocket overrides DefaultSocket.
const EnvSocket = "SPUFF_GUEST_SOCK"

// maxServerURL matches what the host accepts; longer input is not a registry.
const maxServerURL = 1024

// ErrReadOnly is returned by Add and Delete.
var ErrReadOnly = errors.New("docker-credential-spuff: spuff brokers docker credentials read-only, so nothing is stored or erased in a shed; run `docker login` on your computer and allow the registry in the spuff config there")

// Helper forwards credential lookups to the host through the guest daemon.
type Helper struct {
	// Socket is the guest daemon's local socket.
	Socket string
	// Dial reaches the daemon; nil dials Socket. Tests replace it.
	Dial func(ctx context.Context) (net.Conn, error)
	// Bus tunes the call; zero values take this package's defaults (a 5s
	// wait, stretched by the host's progress frames up to 65s while a human
	// is asked on the host).
	Bus bus.Options
}

var _ credentials.Helper = (*Helper)(nil)

// New returns a Helper for the socket named by SPUFF_GUEST_SOCK, or DefaultSocket.
func New() *Helper {
	sock := os.Getenv(EnvSocket)
	if sock == "" {
		sock = DefaultSocket
	}
	return &Helper{Socket: sock}
}

// Get asks the host for serverURL's credentials. A registry the host has no
// login for, or one outside the shed's allowlist, is reported as the
// standard not-found error, so docker clients go on anonymously.
func (h *Helper) Get(serverURL string) (string, string, error) {
	serverURL = strings.TrimSpace(serverURL)
	if err := checkServerURL(serverURL); err != nil {
		return "", "", err
	}
	var resp bus.DockerGetResponse
	err := h.call(bus.OpGet, bus.DockerGetRequest{ServerURL: serverURL}, &resp)
	switch bus.CodeOf(err) {
	case "":
		if resp.Username == "" && resp.Secret == "" {
			return "", "", credentials.NewErrCredentialsNotFound()
		}
		return resp.Username, resp.Secret, nil
	case bus.CodeKeyNotFound, bus.CodeNotAllowed:
		return "", "", credentials.NewErrCredentialsNotFound()
	default:
		return "", "", h.explain(serverURL, err)
	}
}

// List returns the allowed registries the host has logins for, with usernames.
func (h *Helper) List() (map[string]string, error) {
	var resp bus.DockerListResponse
	err := h.call(bus.OpList, nil, &resp)
	switch bus.CodeOf(err) {
	case "":
		if resp.Registries == nil {
			resp.Registries = map[string]string{}
		}
		return resp.Registries, nil
	case bus.CodeNotAllowed:
		return map[string]string{}, nil
	default:
		return nil, h.explain("", err)
	}
}

// Add refuses. The host hears of the attempt (registry only, never the
// secret) so that it is audited; whatever it answers, the answer is no.
func (h *Helper) Add(c *credentials.Credentials) error {
	if c != nil {
		h.report(bus.OpStore, c.ServerURL)
	}
	return ErrReadOnly
}

// Delete refuses, like Add.
func (h *Helper) Delete(serverURL string) error {
	h.report(bus.OpErase, serverURL)
	return ErrReadOnly
}

// report tells the host about a refused write, briefly and best-effort.
func (h *Helper) report(op, serverURL string) {
	serverURL = strings.TrimSpace(serverURL)
	if checkServerURL(serverURL) != nil {
		serverURL = ""
	}
	hh := *h
	hh.Bus.CallTimeout, hh.Bus.MaxWait = 2*time.Second, 2*time.Second
	_ = hh.call(op, bus.DockerGetRequest{ServerURL: serverURL}, nil)
}

func checkServerURL(s string) error {
	if s == "" {
		return credentials.NewErrCredentialsMissingServerURL()
	}
	if len(s) > maxServerURL {
		return fmt.Errorf("docker-credential-spuff: server URL longer than %d bytes", maxServerURL)
	}
	if !utf8.ValidString(s) {
		// JSON would turn it into other text than the client asked about.
		return errors.New("docker-credential-spuff: server URL is not valid UTF-8")
	}
	return nil // the host normalizes and judges the rest
}

// dialError means the guest daemon could not be reached at all.
type dialError struct {
	sock string
	err  error
}

func (e *dialError) Error() string {
	return fmt.Sprintf("docker-credential-spuff: cannot reach the spuff guest daemon at %s (%v); is `spuff-guest serve` running? (`systemctl status spuff-guest`; %s names another socket)", e.sock, e.err, EnvSocket)
}

func (e *dialError) Unwrap() error { return e.err }

func (h *Helper) call(op string, payload, out any) error {
	opts := h.Bus
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 5 * time.Second
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 65 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.MaxWait+time.Second)
	defer cancel()
	conn, err := h.dial(ctx)
	if err != nil {
		return &dialError{sock: h.Socket, err: err}
	}
	c := bus.NewConn(conn, nil, opts)
	defer c.Close()
	return c.Call(ctx, bus.NSDocker, op, payload, out)
}

func (h *Helper) dial(ctx context.Context) (net.Conn, error) {
	if h.Dial != nil {
		return h.Dial(ctx)
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	return d.DialContext(dctx, "unix", h.Socket)
}

// explain turns a failed call into text a developer in the shed can act on.
func (h *Helper) explain(serverURL string, err error) error {
	var de *dialError
	if errors.As(err, &de) {
		return err
	}
	what := "docker credentials"
	if serverURL != "" {
		what = "docker credentials for " + serverURL
	}
	switch bus.CodeOf(err) {
	case bus.CodeHostUnreachable:
		return fmt.Errorf("docker-credential-spuff: %s (%w)", bus.HostUnreachable, err)
	case bus.CodeDenied:
		return fmt.Errorf("docker-credential-spuff: %s were refused on your computer (%w)", what, err)
	case bus.CodeApprovalTimeout:
		return fmt.Errorf("docker-credential-spuff: nobody approved %s on your computer in time; try again and approve the prompt (%w)", what, err)
	case bus.CodeRateLimited:
		return fmt.Errorf("docker-credential-spuff: this shed is sending too many requests; try again in a moment (%w)", err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, bus.ErrClosed) {
		return fmt.Errorf("docker-credential-spuff: no answer from the host for %s; is spuff running on your computer and this shed attached (`spuff status` there)? (%w)", what, err)
	}
	return fmt.Errorf("docker-credential-spuff: %s: %w", what, err)
}
