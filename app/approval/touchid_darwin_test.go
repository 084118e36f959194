//go:build darwin && cgo

package approval

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// TestTouchIDManual shows real Touch ID prompts; it needs a person at the
// Mac, so it runs only with SPUFF_TOUCHID_MANUAL=1 (see README.md).
func TestTouchIDManual(t *testing.T) {
	if os.Getenv("SPUFF_TOUCHID_MANUAL") != "1" {
		t.Skip("set SPUFF_TOUCHID_MANUAL=1 and sit at the Mac to try Touch ID")
	}
	p, err := TouchID()
	if err != nil {
		t.Fatalf("TouchID: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok, err := p.Prompt(ctx, "approve the spuff Touch ID test (touch to allow)")
	if err != nil || !ok {
		t.Fatalf("allow: got %v, %v; touch the sensor to allow", ok, err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok, err = p.Prompt(ctx, "deny the spuff Touch ID test (press Cancel)")
	if err != nil || ok {
		t.Fatalf("deny: got %v, %v; press Cancel to deny", ok, err)
	}
	// Nobody answers: the dialog must go away at the timeout.
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	ok, err = p.Prompt(ctx, "ignore this spuff prompt: it closes itself in 3 seconds")
	if ok || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Fatalf("timeout: got %v, %v after %s", ok, err, time.Since(start))
	}
}
