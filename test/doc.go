// Package test holds spuff's end-to-end tests: the broker, the CLI and the
// guest as separate processes, talking to real OpenSSH, git, MinIO and a
// docker registry.
package test
