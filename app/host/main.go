package host

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// Main parses spuff-app's flags, runs until SIGINT or SIGTERM, and returns
// the exit code.
func Main(args []string, stderr io.Writer, version string) int {
	var opts Options
	fs := flag.NewFlagSet("spuff-app", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.ConfigPath, "config", "", "config file (default ~/.spuff/config.yaml; SPUFF_HOME moves ~/.spuff)")
	fs.BoolVar(&opts.Headless, "headless", false, "run without the menu-bar tray")
	fs.BoolVar(&opts.NoPrompt, "no-prompt", false, "nobody will answer approval prompts (a server, CI): deny at once what needs approval")
	debug := fs.Bool("debug", false, "log debug detail (never secrets)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "spuff-app is the broker: it signs, mints and audits on this computer for every\nattached shed. Drive it with the spuff command.\n\nUsage: spuff-app [--headless] [--no-prompt] [--config FILE] [--debug]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	// The broker mostly waits on sockets and does little work per request;
	// a second processor only adds a spinning thread woken on every
	// request, which on a small machine costs the request itself
	// (measured in make bench). GOMAXPROCS in the environment still wins.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	opts.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	opts.Version = version
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, opts); err != nil {
		fmt.Fprintln(stderr, "spuff-app:", err)
		return 1
	}
	return 0
}
