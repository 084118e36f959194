package approval

import (
	"context"
	"testing"

	"github.com/spuff-dev/spuff/helpers/helper"
)

// BenchmarkApprove measures the approval step a request pays when nobody is
// asked: approval disabled (every request) and a live per-session grant
// (every request after the first yes).
func BenchmarkApprove(b *testing.B) {
	ctx := context.Background()
	b.Run("disabled", func(b *testing.B) {
		a := New(Options{})
		cfg := policy(PolicyPerSession)
		cfg.Enabled = false
		q := req("dev", helper.ClassSSHLogin, "", "SHA256:k", cfg)
		for b.Loop() {
			if m, err := a.Approve(ctx, q); err != nil || m != MethodNone {
				b.Fatal(m, err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		a := New(Options{Prompters: []Prompter{&prompter{method: MethodTouchID, answer: true}}})
		q := req("dev", helper.ClassSSHLogin, "", "SHA256:k", policy(PolicyPerSession))
		if _, err := a.Approve(ctx, q); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if m, err := a.Approve(ctx, q); err != nil || m != MethodCached {
				b.Fatal(m, err)
			}
		}
	})
}
