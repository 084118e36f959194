package host

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/provisioning"
)

// idleEveryEnv is TEST-ONLY: how often spuff-app asks each made shed's idle
// clock (a Go duration) in place of once a minute, so an end-to-end test
// sees a 1-minute idle timeout act on time. Users have no reason to set it.
const idleEveryEnv = "SPUFF_TEST_IDLE_EVERY"

// guestCaller is the broker as the idle shutdown uses it: host→guest agent
// requests over a shed's attached bus.
type guestCaller interface {
	CallGuest(ctx context.Context, name, op string, payload, out any) error
}

// newIdler builds the host's idle shutdown over the Manager: each ready
// shed's idle clock is read over its bus, the notice reaches its users
// over agent/notice and everything it does goes onto /v1/events.
func newIdler(md *made, guests guestCaller, aud provisioning.Auditor, log *slog.Logger) (*provisioning.Idler, error) {
	every := time.Minute
	if v := os.Getenv(idleEveryEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			log.Warn("host: ignoring a bad "+idleEveryEnv, "value", v)
		} else {
			every = d
		}
	}
	return provisioning.NewIdler(provisioning.IdleOptions{
		Manager: md.m,
		Limits: func(name string) (time.Duration, time.Duration) {
			s := md.cfg.ForShed(name)
			return s.IdleTimeout, s.IdleNotice
		},
		Ask: func(ctx context.Context, name string) (time.Duration, error) {
			var r bus.IdleResponse
			if err := guests.CallGuest(ctx, name, bus.OpIdle, nil, &r); err != nil {
				return 0, err
			}
			return time.Duration(r.Seconds) * time.Second, nil
		},
		Tell: func(ctx context.Context, name, text string) error {
			var r bus.NoticeResponse
			if err := guests.CallGuest(ctx, name, bus.OpNotice, bus.NoticeRequest{Text: text}, &r); err != nil {
				return err
			}
			log.Info("host: idle notice shown in the shed", "shed", name, "terminals", r.Terminals)
			return nil
		},
		// Detached and forgotten, so a restart does not redial a stopped shed.
		Detach: func(name string) { _ = md.sheds.Detach(name) },
		Audit:  aud,
		Events: md.publishIdle,
		Every:  every,
		Log:    log,
	})
}

// publishIdle puts an idle action onto /v1/events, where the tray shows it
// as a notification like the rest of its notices.
func (md *made) publishIdle(e provisioning.IdleEvent) {
	ch := &api.IdleChange{IdleSeconds: int64(e.Idle / time.Second), Action: e.Action, Error: e.Error}
	ev := api.Event{Kind: api.EventIdle, Shed: e.Shed, Time: time.Now().UTC(), Idle: ch}
	switch e.Op {
	case provisioning.OpIdleNotice:
		ch.Change, ch.LeftSeconds = api.IdleNotice, int64(e.Left/time.Second)
	case provisioning.OpIdleCancel:
		ch.Change = api.IdleCancel
	case provisioning.OpIdleStop:
		ch.Change = api.IdleStop
	case provisioning.OpIdleDestroy:
		ch.Change = api.IdleDestroy
	}
	md.fanOut(ev)
}

// idleFields fills a listed shed's idle timeout and time left from the
// idle shutdown's last round.
func (md *made) idleFields(m *api.MadeShed) {
	if md.idle == nil {
		return
	}
	if d, ok := md.idle.Timeout(m.Name); ok {
		m.IdleTimeoutSeconds = new(int64(d / time.Second))
	}
	if d, ok := md.idle.Left(m.Name); ok {
		m.IdleLeftSeconds = new(int64(d / time.Second))
	}
}
