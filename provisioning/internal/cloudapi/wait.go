package cloudapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spuff-dev/spuff/provisioning"
)

// WaitReady reads the machine with get every poll until it runs with an
// SSH address, for at most limit. noun and word name it in the
// provider's terms ("droplet", "active"); each new status is a progress
// step. A failed read is retried (and said if the wait runs out); a
// machine that is gone, or in a state it will not leave for running, ends
// the wait at once.
func WaitReady(outer context.Context, get func(context.Context) (provisioning.Machine, error), poll, limit time.Duration, noun, word string, progress func(string)) (provisioning.Machine, error) {
	ctx, cancel := context.WithTimeout(outer, limit)
	defer cancel()
	var (
		m       provisioning.Machine
		last    string
		lastErr error
	)
	for {
		got, err := get(ctx)
		switch {
		case err == nil:
			m = got
			if m.Status != last {
				progress(noun + " " + m.Status)
				last = m.Status
			}
			if m.State == provisioning.Running && m.SSHAddr != "" {
				return m, nil
			}
			if m.State != provisioning.Pending && m.State != provisioning.Running {
				return m, fmt.Errorf("%s %s is %q, not %s", noun, m.ID, m.Status, word)
			}
		case errors.Is(err, provisioning.ErrNotFound):
			return m, err
		default:
			lastErr = err // maybe passing; said if the wait runs out
		}
		if err := Sleep(ctx, poll); err != nil {
			if outer.Err() == nil {
				return m, fmt.Errorf("the %s was not %s with a public IPv4 within %s (last status %q%s)", noun, word, limit, last, LastSaid(lastErr))
			}
			return m, outer.Err()
		}
	}
}

// LastSaid adds the last failed read to a wait's timeout, if any.
func LastSaid(err error) string {
	if err == nil {
		return ""
	}
	return "; last read failed: " + err.Error()
}
