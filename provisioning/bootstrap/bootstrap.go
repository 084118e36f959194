// Package bootstrap turns a booted machine into a shed, the same way for
// every provider (DESIGN §8): over ssh with the host's one SSH identity and
// the shed's pinned (or accept-new) host key it waits for sshd, uploads the
// guest binaries for the shed's arch and checks their SHA-256 there, runs
// `spuff-guest install` with the per-shed agent token on stdin, and waits
// for cloud-init, which runs meanwhile (the install after it, where the
// user-data runs the developer's commands).
package bootstrap

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/sshconn"
	"github.com/spuff-dev/spuff/provisioning/state"
)

// BinDirEnv names a directory holding linux-amd64/ and linux-arm64/ in
// place of the bin/ beside the running executable (tests, dev builds).
const BinDirEnv = "SPUFF_GUEST_BIN_DIR"

// Binaries are uploaded to the shed; spuff-guest is required.
var Binaries = []string{"spuff-guest", "docker-credential-spuff"}

// Options build a Bootstrapper.
type Options struct {
	// Auth logs in as the host's one SSH identity (sshconn.Auth).
	Auth []ssh.AuthMethod
	// KnownHosts is ~/.spuff/known_hosts, where the shed's alias is.
	KnownHosts string
	// BinDir holds linux-amd64/ and linux-arm64/ (default: $SPUFF_GUEST_BIN_DIR,
	// else bin/ beside the executable).
	BinDir string
	// InstallFlags are added to `spuff-guest install` (tests: --root, --no-enable).
	InstallFlags []string
	// Sudo prefixes the install command ("sudo" unless set; "-" for none).
	Sudo string
	// InstallEarly runs the install while cloud-init finishes, rather
	// than after: set when the user-data runs nothing of the developer's
	// (provision.run), which could write what install writes.
	InstallEarly bool
	// SSHTimeout bounds the wait for a login (10m: a TCG VM boots slowly).
	SSHTimeout time.Duration
	Log        *slog.Logger
}

// Bootstrapper runs the bootstrap of one shed at a time per call.
type Bootstrapper struct{ o Options }

var _ provisioning.Bootstrapper = (*Bootstrapper)(nil)

// New checks o.
func New(o Options) (*Bootstrapper, error) {
	if len(o.Auth) == 0 || o.KnownHosts == "" {
		return nil, errors.New("bootstrap: Options need Auth and KnownHosts")
	}
	if o.BinDir == "" {
		o.BinDir = os.Getenv(BinDirEnv)
	}
	if o.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("bootstrap: finding the guest binaries: %w", err)
		}
		o.BinDir = filepath.Join(filepath.Dir(exe), "bin")
	}
	if o.Sudo == "" {
		o.Sudo = "sudo"
	}
	if o.SSHTimeout <= 0 {
		o.SSHTimeout = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Bootstrapper{o: o}, nil
}

// Bootstrap makes s's machine a shed and returns its `uname -m`.
func (b *Bootstrapper) Bootstrap(ctx context.Context, s state.Shed, progress func(string)) (string, error) {
	if progress == nil {
		progress = func(string) {}
	}
	c, err := b.dial(ctx, s, progress)
	if err != nil {
		return "", err
	}
	defer c.Close()
	// The upload runs while cloud-init finishes (a slow final stage under
	// TCG): it needs only the login, and lands in a fresh /tmp directory.
	// So does the install, unless cloud-init still has the developer's
	// provision.run to run, which may write what install writes. Ready
	// waits for both; cloud-init's failure is reported first.
	var mu sync.Mutex
	say := func(s string) { mu.Lock(); defer mu.Unlock(); progress(s) }
	say("waiting for cloud-init")
	ci := make(chan error, 1)
	go func() { ci <- cloudInit(c, say) }()
	arch, dir, err := b.archAndUpload(c, say)
	if dir != "" {
		defer run(c, "rm -rf "+dir, nil) //nolint:errcheck // a tmp dir left is harmless
	}
	if err == nil && b.o.InstallEarly {
		err = b.install(c, s.User, dir, say)
	}
	if cerr := <-ci; cerr != nil {
		return "", b.withOutputLog(c, cerr)
	}
	if err != nil {
		return "", err
	}
	if !b.o.InstallEarly {
		if err := b.install(c, s.User, dir, progress); err != nil {
			return "", err
		}
	}
	return arch, nil
}

// install runs the uploaded `spuff-guest install` with a new agent token
// on its stdin.
func (b *Bootstrapper) install(c *ssh.Client, user, dir string, progress func(string)) error {
	progress("installing spuff-guest")
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	cmd := dir + "/spuff-guest install --user " + user + " --agent-token-stdin"
	if len(b.o.InstallFlags) > 0 {
		cmd += " " + strings.Join(b.o.InstallFlags, " ")
	}
	if b.o.Sudo != "-" {
		cmd = b.o.Sudo + " " + cmd
	}
	// The token goes on stdin only: never argv, user-data or a log.
	_, err := run(c, cmd, strings.NewReader(hex.EncodeToString(tok)+"\n"))
	clear(tok) // the shed keeps the token; the host keeps nothing of it
	if err != nil {
		return err
	}
	progress("spuff-guest installed")
	return nil
}

// dial waits for sshd (TCP, then a real login under the shed's alias) until
// SSHTimeout. A refused host key ends the wait at once.
func (b *Bootstrapper) dial(ctx context.Context, s state.Shed, progress func(string)) (*ssh.Client, error) {
	hk := sshconn.AcceptNewAlias(b.o.KnownHosts, s.HostKeyAlias)
	if s.HostKey != "" {
		hk = sshconn.Pinned(b.o.KnownHosts, s.HostKeyAlias)
	}
	var keyErr error
	cfg := &ssh.ClientConfig{User: s.User, Auth: b.o.Auth, Timeout: 20 * time.Second,
		HostKeyCallback: func(h string, a net.Addr, k ssh.PublicKey) error {
			keyErr = hk(h, a, k)
			return keyErr
		}}
	ctx, cancel := context.WithTimeout(ctx, b.o.SSHTimeout)
	defer cancel()
	progress("waiting for ssh on " + s.SSHAddr)
	start, last, said := time.Now(), "", ""
	for {
		conn, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", s.SSHAddr)
		if err == nil {
			keyErr = nil
			sc, chans, reqs, herr := ssh.NewClientConn(conn, s.SSHAddr, cfg)
			if herr == nil {
				progress(fmt.Sprintf("logged in as %s after %s", s.User, time.Since(start).Round(time.Second)))
				return ssh.NewClient(sc, chans, reqs), nil
			}
			conn.Close()
			if keyErr != nil {
				return nil, fmt.Errorf("bootstrap: the shed's host key is refused under %s: %w", s.HostKeyAlias, keyErr)
			}
			err = herr
			if said != "tcp" {
				progress("port open, waiting for a login")
				said = "tcp"
			}
		}
		last = err.Error()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bootstrap: no ssh login to %s after %s (last: %s)", s.SSHAddr, b.o.SSHTimeout, last)
		case <-time.After(2 * time.Second):
		}
	}
}

// cloudInitCmd waits for cloud-init; --long (cloud-init ≥ 22) says why it
// failed, the plain form is for older ones.
var cloudInitCmd = "cloud-init status --wait --long 2>&1 || cloud-init status --wait"

// cloudInit waits for cloud-init, passing its output lines on as progress.
// A machine without cloud-init (exit 127) has nothing to wait for.
func cloudInit(c *ssh.Client, progress func(string)) error {
	sess, err := c.NewSession()
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	defer sess.Close()
	// Two buffers: a bytes.Buffer as Stderr is filled by ReadFrom, which
	// would cut back whatever Stdout wrote to the same buffer meanwhile.
	var stdout, stderr bytes.Buffer
	sess.Stdout = io.MultiWriter(&stdout, lineWriter(progress))
	sess.Stderr = &stderr
	err = sess.Run(cloudInitCmd)
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && exit.ExitStatus() == 127:
		progress("no cloud-init on this machine")
		return nil
	case errors.As(err, &exit) && exit.ExitStatus() == 2:
		// cloud-init ≥ 23.4: done, with recoverable errors (deprecations).
		return nil
	}
	return fmt.Errorf("bootstrap: cloud-init: %w: %s", err, api.Printable(tail(stdout.String()+stderr.String())))
}

// archAndUpload uploads the guest binaries of the shed's `uname -m` and
// returns that arch and the shed's directory holding them. Each ssh
// session costs a TCG shed most of a second, so there are two: one asks
// the arch and makes the directory, one unpacks and sums the binaries.
func (b *Bootstrapper) archAndUpload(c *ssh.Client, progress func(string)) (arch, dir string, err error) {
	out, err := run(c, "uname -m && mktemp -d /tmp/spuff-guest.XXXXXXXX", nil)
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return "", "", fmt.Errorf("bootstrap: uname and mktemp gave %q", api.Printable(out))
	}
	arch, dir = f[0], f[1]
	if !strings.HasPrefix(dir, "/tmp/spuff-guest.") || strings.ContainsAny(dir, " ;'\"$`\\\n") {
		return "", "", fmt.Errorf("bootstrap: mktemp gave %q", api.Printable(dir))
	}
	goarch, ok := map[string]string{"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[arch]
	if !ok {
		return "", dir, fmt.Errorf("bootstrap: the shed's arch %q has no guest binaries", api.Printable(arch))
	}
	return arch, dir, b.upload(c, filepath.Join(b.o.BinDir, "linux-"+goarch), dir, progress)
}

// withOutputLog adds the last words of what cloud-init ran to its failure:
// `cloud-init status` names the failed module, its output log holds the
// command's own stderr (a provision.run command's), followed by
// cloud-init's timestamped warnings, which are left out.
func (b *Bootstrapper) withOutputLog(c *ssh.Client, err error) error {
	cmd := "grep -avE '^(Cloud-init v[.] |[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:,]+ - )' /var/log/cloud-init-output.log | tail -n 3"
	if b.o.Sudo != "-" {
		cmd = b.o.Sudo + " -n sh -c \"" + cmd + "\""
	}
	out, lerr := run(c, cmd, nil)
	if lerr != nil || strings.TrimSpace(out) == "" {
		return err
	}
	return fmt.Errorf("%w; the output ends: %s", err, api.Printable(tail(out)))
}

// upload sends the binaries of dir to the shed's directory remote as one
// gzipped tar stream (under TCG the bytes cost more than the unpacking)
// and checks each one's SHA-256 there.
func (b *Bootstrapper) upload(c *ssh.Client, dir, remote string, progress func(string)) error {
	var names []string
	sums := map[string]string{}
	var raw int
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	for i, name := range Binaries {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) && i > 0 {
			continue // only spuff-guest is required
		}
		if err != nil {
			return fmt.Errorf("bootstrap: the guest binaries (make build-guest, or set %s): %w", BinDirEnv, err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return fmt.Errorf("bootstrap: packing %s: %w", name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("bootstrap: packing %s: %w", name, err)
		}
		sum := sha256.Sum256(data)
		sums[name], raw = hex.EncodeToString(sum[:]), raw+len(data)
		names = append(names, name)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("bootstrap: packing the guest binaries: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("bootstrap: packing the guest binaries: %w", err)
	}
	progress(fmt.Sprintf("uploading %s (%d KiB, %d KiB packed)", strings.Join(names, ", "), raw/1024, buf.Len()/1024))
	got, err := run(c, "tar -xzof - -C "+remote+" && cd "+remote+" && sha256sum -- "+strings.Join(names, " "), &buf)
	if err != nil {
		return err
	}
	seen := map[string]string{}
	for _, l := range strings.Split(got, "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			seen[f[1]] = f[0]
		}
	}
	for _, name := range names {
		if seen[name] != sums[name] {
			return fmt.Errorf("bootstrap: %s arrived with SHA-256 %q, want %s", name, api.Printable(seen[name]), sums[name])
		}
		progress(name + " SHA-256 checked in the shed")
	}
	return nil
}

// run runs cmd in a session and returns its stdout.
func run(c *ssh.Client, cmd string, stdin io.Reader) (string, error) {
	sess, err := c.NewSession()
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, &stdout, &stderr
	if err := sess.Run(cmd); err != nil {
		return "", fmt.Errorf("bootstrap: %s: %w: %s", strings.Fields(cmd)[0], err, api.Printable(tail(stderr.String())))
	}
	return stdout.String(), nil
}

// lineWriter passes each whole non-empty line on.
type lineWriter func(string)

func (w lineWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(string(p), "\n") {
		if l = strings.TrimSpace(l); l != "" && l != "." {
			w("cloud-init: " + api.Printable(l))
		}
	}
	return len(p), nil
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 400 {
		s = "…" + s[len(s)-400:]
	}
	return s
}
