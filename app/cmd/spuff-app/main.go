// Command spuff-app is the broker: it signs, mints and audits on this
// computer for every attached shed, with a menu-bar tray or --headless.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spuff-dev/spuff/app/host"
)

var version = "dev"

func main() {
	var opts host.Options
	flag.StringVar(&opts.ConfigPath, "config", "", "config file (default ~/.spuff/config.yaml; SPUFF_HOME moves ~/.spuff)")
	flag.BoolVar(&opts.Headless, "headless", false, "run without the menu-bar tray")
	debug := flag.Bool("debug", false, "log debug detail (never secrets)")
	flag.Parse()
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	opts.Version = version
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := host.Run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "spuff-app:", err)
		os.Exit(1)
	}
}
