// Package keychaintest runs a real Secret Service for tests: a private D-Bus
// session bus with its own gnome-keyring-daemon, whose login keyring lives
// in the test's temporary directory and is unlocked with a password on stdin.
package keychaintest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/spuff-dev/spuff/test/testenv"
)

// Daemon is a private session bus, optionally with gnome-keyring on it.
type Daemon struct {
	Addr string // the bus address to hand to keychain.NewSecretService

	t       testing.TB
	out     testenv.Buffer // the daemons' chatter, shown when a test fails
	dir     string
	bus     *exec.Cmd
	keyring *exec.Cmd
}

// Bus starts a private session bus with no services on it (and none that
// D-Bus could start on demand).
func Bus(t testing.TB) *Daemon {
	t.Helper()
	bin := testenv.Tool(t, "dbus-daemon")
	d := &Daemon{t: t, dir: t.TempDir()}
	sock := filepath.Join(d.dir, "bus")
	conf := filepath.Join(d.dir, "bus.conf")
	// No <servicedir>: the system's org.freedesktop.secrets activation file
	// must not start a keyring behind the test's back.
	err := os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=`+sock+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	d.bus = exec.Command(bin, "--config-file="+conf, "--nofork", "--print-address=1")
	out, err := d.bus.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.bus.Stderr = &d.out
	if err := d.bus.Start(); err != nil {
		t.Fatalf("starting dbus-daemon: %v", err)
	}
	t.Cleanup(func() {
		stop(d.bus)
		if t.Failed() {
			t.Logf("dbus-daemon and gnome-keyring-daemon said:\n%s", d.out.String())
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon printed no address: %v", err)
	}
	d.Addr = strings.TrimSpace(line)
	return d
}

// SecretService starts a private bus with an unlocked gnome-keyring on it.
func SecretService(t testing.TB) *Daemon {
	t.Helper()
	testenv.Tool(t, "gnome-keyring-daemon")
	d := Bus(t)
	d.StartKeyring()
	return d
}

const password = "spuff-test-keyring"

// StartKeyring starts gnome-keyring-daemon on the bus (again, after
// StopKeyring: the same keyring files are unlocked with the same password).
func (d *Daemon) StartKeyring() {
	t := d.t
	t.Helper()
	bin := testenv.Tool(t, "gnome-keyring-daemon")
	home := filepath.Join(d.dir, "home")
	run := filepath.Join(d.dir, "run")
	for _, p := range []string{home, run} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "--unlock", "--components=secrets", "--foreground")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_DATA_HOME=" + filepath.Join(home, "data"),
		"XDG_RUNTIME_DIR=" + run,
		"DBUS_SESSION_BUS_ADDRESS=" + d.Addr,
	}
	cmd.Stdin = strings.NewReader(password)
	cmd.Stdout, cmd.Stderr = &d.out, &d.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting gnome-keyring-daemon: %v", err)
	}
	d.keyring = cmd
	t.Cleanup(func() { stop(cmd) })
	if err := waitName(d.Addr, "org.freedesktop.secrets", 10*time.Second); err != nil {
		t.Fatalf("gnome-keyring-daemon: %v", err)
	}
}

// StopKeyring stops gnome-keyring-daemon and waits until its name is gone.
func (d *Daemon) StopKeyring() {
	d.t.Helper()
	if d.keyring == nil {
		return
	}
	stop(d.keyring)
	d.keyring = nil
}

func stop(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func waitName(addr, name string, within time.Duration) error {
	conn, err := dbus.Connect(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(within)
	for {
		var has bool
		err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has)
		if err == nil && has {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear on the bus within %s (last error: %v)", name, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Env is the environment for a libsecret tool (secret-tool) on this bus.
func (d *Daemon) Env() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "DBUS_SESSION_BUS_ADDRESS=" + d.Addr}
}
