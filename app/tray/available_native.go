//go:build (darwin && cgo) || windows

package tray

func available() error { return nil }
