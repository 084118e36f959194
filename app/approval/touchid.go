package approval

import (
	"context"
	"errors"
)

// ErrTouchIDUnavailable is returned by TouchID where this build or this Mac
// cannot ask for Touch ID (not macOS, built without cgo, no way to
// authenticate the owner).
var ErrTouchIDUnavailable = errors.New("approval: touch id is unavailable")

// TouchID returns a Prompter that asks the Mac's owner with Touch ID, an
// Apple Watch or the login password (LocalAuthentication's
// DeviceOwnerAuthentication policy), or an error wrapping
// ErrTouchIDUnavailable.
func TouchID() (Prompter, error) {
	if err := touchIDAvailable(); err != nil {
		return nil, err
	}
	return touchID{}, nil
}

type touchID struct{}

var _ Prompter = touchID{}

func (touchID) Method() string { return MethodTouchID }

func (touchID) Prompt(ctx context.Context, reason string) (bool, error) {
	return touchIDPrompt(ctx, reason)
}
