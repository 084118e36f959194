//go:build !darwin || !cgo

package approval

import (
	"context"
	"errors"
	"testing"
)

// Elsewhere Touch ID reports itself unavailable, so spuff-app runs with the
// queue alone instead of failing.
func TestTouchIDUnavailable(t *testing.T) {
	p, err := TouchID()
	if p != nil || !errors.Is(err, ErrTouchIDUnavailable) {
		t.Fatalf("TouchID() = %v, %v; want ErrTouchIDUnavailable", p, err)
	}
	if ok, err := (touchID{}).Prompt(context.Background(), "sign in"); ok || !errors.Is(err, ErrTouchIDUnavailable) {
		t.Fatalf("Prompt = %v, %v; want no answer", ok, err)
	}
}
