// Package host assembles spuff-app: configuration, the audit log, the
// credential helpers, the broker and the control API, and runs them until
// the process is told to stop.
package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/broker"
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/app/keychain"
	"github.com/spuff-dev/spuff/app/login"
	"github.com/spuff-dev/spuff/app/notify"
	"github.com/spuff-dev/spuff/app/tray"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/provisioning/buskey"
	"github.com/spuff-dev/spuff/provisioning/sshconn"
	"github.com/spuff-dev/spuff/provisioning/state"
)

// Options are spuff-app's flags.
type Options struct {
	ConfigPath string // default ~/.spuff/config.yaml
	Headless   bool
	NoPrompt   bool // nobody answers approval prompts: deny at once
	Version    string
	Log        *slog.Logger
}

// Run starts the broker and its control API and serves until ctx ends.
func Run(ctx context.Context, opts Options) error {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opts.ConfigPath == "" {
		opts.ConfigPath = config.ConfigPath()
	}
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return err
	}
	// Before anything else, and let go last (deferred first).
	lock, err := control.Lock(config.SocketPath())
	if err != nil {
		return err
	}
	defer lock.Close()
	aw, err := audit.OpenWith(cfg.Audit.Path, audit.Options{Durability: audit.Durability(cfg.Audit.Durability), Log: log})
	if err != nil {
		return fmt.Errorf("host: the audit log is required and could not be opened: %w", err)
	}
	defer aw.Close()

	identity, sshDir, err := sshIdentity(cfg, log)
	if err != nil {
		return err
	}
	defer identity.Close()
	svcs, stats, closeSvcs := services(identity, sshDir, log)
	defer closeSvcs()

	kc, kcKind, err := keychain.Open(filepath.Join(config.Home(), "keychain"), log)
	if err != nil {
		return err
	}
	appr := approver(kc, opts.Headless, opts.NoPrompt, log)
	if err != nil {
		return err
	}

	dialCfg := &bus.DialConfig{
		SSHAuth:         sshconn.Auth(identity),
		HostKeyCallback: sshconn.AcceptNew(filepath.Join(config.Home(), "known_hosts")),
	}
	db, err := state.Open(config.StatePath())
	if err != nil {
		return err
	}
	defer db.Close()
	var md *made // dials made sheds' buses with the bus key
	b, err := broker.New(broker.Options{
		Config:   cfg,
		Audit:    aw,
		Services: svcs,
		Approver: appr,
		Log:      log,
		// Each shed's mark past its future-dated ids, for the next start.
		FencePath: filepath.Join(config.Home(), "replay-fence"),
		Dial: func(ctx context.Context, url string) (io.ReadWriteCloser, error) {
			if md != nil {
				return md.dial(ctx, url, dialCfg)
			}
			return bus.Dial(ctx, url, dialCfg)
		},
	})
	if err != nil {
		return err
	}
	defer b.Close()
	sheds := &rememberingBroker{Broker: b, db: db, log: log}
	bk, err := buskey.Load(kc, kcKind, config.Home())
	if err != nil {
		return err
	}
	if md, err = newMade(cfg, db, identity, bk, sheds, aw, log); err != nil {
		return err
	}
	sheds.restore(ctx)
	if md.idle, err = newIdler(md, b, provisionAudit{aw}, log); err != nil {
		return err
	}

	l, err := control.Listen(config.SocketPath(), log)
	if err != nil {
		return err
	}
	// Holding the lock, this is the one spuff-app: a row left mid-step is
	// an earlier one's, not another's still at work.
	if err := md.m.MarkInterrupted(ctx); err != nil {
		log.Warn("provisioning: sheds left mid-step by an earlier spuff-app stay as they were", "err", err)
	}
	started := time.Now().UTC()
	srv := &control.Server{
		Broker:    sheds,
		AuditPath: aw.Path(),
		Log:       log,
		Approvals: appr,
		Events:    []control.Subscriber{b, appr, md},
		// Provisioner: the Manager, which alone holds provider tokens.
		Provisioner: md,
		Status: func() api.Status {
			as, fs := aw.State(), b.FenceState()
			return api.Status{
				Version: opts.Version, Started: started, Config: opts.ConfigPath, Keychain: kcKind, Helpers: stats(),
				Audit:     &api.AuditHealth{Durability: string(as.Durability), Error: as.Err, Since: as.Since},
				Fence:     &api.FenceHealth{Path: fs.Path, Error: fs.Err, Since: fs.Since},
				Approvals: &api.ApprovalsSummary{Pending: len(appr.Pending()), Grants: len(appr.Grants())},
			}
		},
	}
	log.Info("spuff-app ready", "socket", config.SocketPath(), "audit", aw.Path(), "config", opts.ConfigPath)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	quit := md.quitOn(ctx)
	go md.idle.Run(ctx)
	if !opts.Headless {
		client := control.NewClient(config.SocketPath())
		if n, err := notify.New(notify.Options{AppName: "spuff"}); err != nil {
			log.Info("no desktop notifications; the tray alone shows approvals", "reason", err)
		} else {
			defer n.Close()
			go tray.Notices(ctx, client, n, log)
		}
		// The tray owns the main goroutine until the user quits it.
		var auto tray.Autostart
		if exe, err := os.Executable(); err == nil {
			auto = login.Switch{Exe: exe}
		}
		if err := tray.Run(ctx, client, auto, log); err != nil {
			log.Warn("no menu-bar tray; running headless", "reason", err)
		} else {
			cancel()
		}
	}
	err = <-served
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	cancel()
	<-quit
	return err
}
