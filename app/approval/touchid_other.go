//go:build !darwin || !cgo

package approval

import (
	"context"
	"fmt"
)

func touchIDAvailable() error {
	return fmt.Errorf("%w: it needs macOS and a build with cgo", ErrTouchIDUnavailable)
}

func touchIDPrompt(context.Context, string) (bool, error) { return false, touchIDAvailable() }
