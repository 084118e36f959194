// Package guestcmd is the spuff-guest command line: serve (the daemon),
// bus-stdio (the ssh forced command that bridges to the daemon's bus
// socket) and status.
package guestcmd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/spuff-dev/spuff/guest/agentapi"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/guest/daemon"
)

// Version is set by the build (-ldflags -X).
var Version = "dev"

const usage = `spuff-guest runs inside a shed and brokers credentials through your computer.

Usage:
  spuff-guest serve [flags]     run the daemon (normally started by systemd)
  spuff-guest bus-stdio         bridge stdin/stdout to the daemon's bus socket
                                (the forced command of the host's ssh key)
  spuff-guest status            show whether the host is connected
  spuff-guest ping              ask the host for a pong through the daemon (audited)
  spuff-guest install --user U  install the binaries, the systemd unit for user U,
                                the login environment and U's docker config;
                                --agent-token-stdin turns on the agent API with
                                the token read from stdin
  spuff-guest version

Run 'spuff-guest serve -h' for the daemon's flags.
`

// Main runs the command and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stderr)
	case "bus-stdio":
		err = busStdio(args[1:], stdin, stdout)
	case "status":
		err = status(args[1:], stdout)
	case "ping":
		err = ping(args[1:], stdout)
	case "install":
		err = install(args[1:], stdin, stdout)
	case "version", "--version":
		fmt.Fprintln(stdout, "spuff-guest", Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "spuff-guest: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "spuff-guest:", err)
		return 1
	}
	return 0
}

// defaultDockerConfig is where the docker CLI, skopeo, podman and buildah
// look: DOCKER_CONFIG, else ~/.docker.
func defaultDockerConfig() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".docker")
	}
	return "off"
}

func defaultRunDir() string {
	if d := os.Getenv("SPUFF_RUN_DIR"); d != "" {
		return d
	}
	return "/run/spuff"
}

func serve(args []string, stderr io.Writer) error {
	// The daemon does little per request and mostly relays: one P means
	// fewer threads woken per hop (measured in make bench). GOMAXPROCS in
	// the environment still wins.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runDir := fs.String("run-dir", defaultRunDir(), "directory for bus.sock, ssh-agent.sock, guest.sock, aws-token and status files")
	busListen := fs.String("bus-listen", "", "where the host connects: unix:PATH or vsock:PORT (default unix:RUN-DIR/bus.sock)")
	sshSock := fs.String("ssh-auth-sock", "", "the shed's SSH_AUTH_SOCK (default RUN-DIR/ssh-agent.sock; \"off\" disables)")
	awsListen := fs.String("aws-listen", "127.0.0.1:499", "loopback address of the AWS container-credentials endpoint (\"off\" disables)")
	agentListen := fs.String("agent-listen", "", "loopback address of the agent API, e.g. 127.0.0.1:7575 (needs SPUFF_AGENT_TOKEN); default off")
	dockerConfig := fs.String("docker-config", defaultDockerConfig(), "docker config dir whose config.json gets a credHelpers entry per registry the host allows (\"off\" leaves it alone)")
	group := fs.String("socket-group", "", "group that may use the shed's sockets (for containers); default: owner only")
	verbose := fs.Bool("v", false, "log debug detail")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// x/crypto's agent server reports every failed request on the global
	// logger; sshagent already logs what matters, once.
	stdlog.SetOutput(io.Discard)
	gid := -1
	if *group != "" {
		g, err := user.LookupGroup(*group)
		if err != nil {
			return fmt.Errorf("looking up --socket-group: %w", err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	var api *agentapi.API
	if *agentListen != "" {
		// Checked before anything listens: no token, no daemon.
		a, err := agentapi.New(os.Getenv("SPUFF_AGENT_TOKEN"))
		if err != nil {
			return err
		}
		api = a
	}
	if *sshSock == "" {
		*sshSock = filepath.Join(*runDir, "ssh-agent.sock")
	}
	if *dockerConfig == "off" {
		*dockerConfig = ""
	}
	fronts, err := frontends(*runDir, *sshSock, *awsListen, *dockerConfig, gid, log)
	if err != nil {
		return err
	}
	d := daemon.New(daemon.Options{
		RunDir: *runDir, BusListen: *busListen, SocketGID: gid, Version: Version, Log: log, Frontends: fronts,
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if api != nil {
		l, err := agentapi.Listen(*agentListen)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: api.Handler(d), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(l) //nolint:errcheck // ends with the process
		defer srv.Close()
	}
	return d.Run(ctx)
}

// busStdio bridges an ssh session to the daemon's bus socket.
func busStdio(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("bus-stdio", flag.ContinueOnError)
	runDir := fs.String("run-dir", defaultRunDir(), "the daemon's run directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := net.Dial("unix", filepath.Join(*runDir, "bus.sock"))
	if err != nil {
		return fmt.Errorf("reaching the spuff-guest daemon: %w (is `spuff-guest serve` running?)", err)
	}
	defer c.Close()
	done := make(chan error, 2)
	go func() {
		_, err := io.Copy(c, stdin)
		if uc, ok := c.(*net.UnixConn); ok {
			_ = uc.CloseWrite()
		}
		done <- err
	}()
	go func() {
		_, err := io.Copy(stdout, c)
		done <- err
	}()
	return <-done
}

func status(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	runDir := fs.String("run-dir", defaultRunDir(), "the daemon's run directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	matches, _ := filepath.Glob(filepath.Join(*runDir, "*.status"))
	if len(matches) == 0 {
		return fmt.Errorf("no status files in %s: is `spuff-guest serve` running?", *runDir)
	}
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			return err
		}
		var st daemon.StatusFile
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("reading %s: %w", m, err)
		}
		state := "host not connected"
		if st.HostConnected {
			state = "host connected"
		}
		fmt.Fprintf(stdout, "%-20s %-40s %s\n", st.NS, st.Where, state)
	}
	return nil
}

// ping sends agent/ping through guest.sock to the host and back.
func ping(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	runDir := fs.String("run-dir", defaultRunDir(), "the daemon's run directory")
	count := fs.Int("c", 1, "how many pings")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sock := os.Getenv("SPUFF_GUEST_SOCK")
	if sock == "" {
		sock = filepath.Join(*runDir, "guest.sock")
	}
	nc, err := net.Dial("unix", sock)
	if err != nil {
		return fmt.Errorf("reaching the spuff-guest daemon at %s: %w (is `spuff-guest serve` running?)", sock, err)
	}
	c := bus.NewConn(nc, nil, bus.Options{CallTimeout: 5 * time.Second})
	defer c.Close()
	for i := 0; i < *count; i++ {
		start := time.Now()
		var pong bus.PingResponse
		if err := c.Call(context.Background(), bus.NSAgent, bus.OpPing, nil, &pong); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		fmt.Fprintf(stdout, "pong from the host in %s\n", time.Since(start).Round(time.Microsecond))
	}
	return nil
}
