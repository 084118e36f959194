//go:build !linux && !darwin

package notify

func newPlatform(Options) (Notifier, error) { return nil, ErrUnavailable }
