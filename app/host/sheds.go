package host

import (
	"context"
	"errors"
	"log/slog"

	"github.com/spuff-dev/spuff/app/broker"
	"github.com/spuff-dev/spuff/provisioning/state"
)

// rememberingBroker is the broker as the control API sees it: attachments
// are also written to state.db, so the next start reconnects them.
type rememberingBroker struct {
	*broker.Broker
	db  *state.DB
	log *slog.Logger
}

func (r *rememberingBroker) Attach(name, url string) error {
	if err := r.Broker.Attach(name, url); err != nil {
		return err
	}
	if err := r.db.SaveAttachment(context.Background(), state.Attachment{Name: name, URL: url}); err != nil {
		r.log.Warn("shed attached but not remembered; attach it again after a restart", "shed", name, "err", err)
	}
	return nil
}

func (r *rememberingBroker) Detach(name string) error {
	err := r.Broker.Detach(name)
	if ferr := r.db.ForgetAttachment(context.Background(), name); ferr != nil && !errors.Is(ferr, state.ErrNotFound) {
		r.log.Warn("shed detached but still remembered", "shed", name, "err", ferr)
	}
	return err
}

// restore attaches every remembered shed.
func (r *rememberingBroker) restore(ctx context.Context) {
	sheds, err := r.db.Attachments(ctx)
	if err != nil {
		r.log.Warn("could not read remembered sheds", "err", err)
		return
	}
	for _, s := range sheds {
		if err := r.Broker.Attach(s.Name, s.URL); err != nil {
			r.log.Warn("could not reattach a remembered shed", "shed", s.Name, "err", err)
		}
	}
}
