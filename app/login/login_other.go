//go:build !linux && !darwin

package login

import "errors"

func entry(string) (Entry, error) {
	return Entry{}, errors.New("login: start at login is not supported on this platform")
}
