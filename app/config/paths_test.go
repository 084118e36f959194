package config

import (
	"path/filepath"
	"testing"
)

func TestPaths(t *testing.T) {
	t.Setenv("HOME", "/home/dev")
	t.Setenv("SPUFF_HOME", "")
	t.Setenv("XDG_DATA_HOME", "")
	for got, want := range map[string]string{
		Home():             "/home/dev/.spuff",
		ConfigPath():       "/home/dev/.spuff/config.yaml",
		StatePath():        "/home/dev/.spuff/state.db",
		RunDir():           "/home/dev/.spuff/run",
		SocketPath():       "/home/dev/.spuff/run/spuff.sock",
		DefaultAuditPath(): "/home/dev/.local/share/shed/extensions-audit.log",
		ExpandHome("~"):    "/home/dev",
		ExpandHome("~/x"):  "/home/dev/x",
		ExpandHome("~x/y"): "~x/y",
		ExpandHome("/a/~"): "/a/~",
		ExpandHome("rel"):  "rel",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}

	t.Setenv("SPUFF_HOME", "/srv/spuff/")
	if got := SocketPath(); got != "/srv/spuff/run/spuff.sock" {
		t.Errorf("SPUFF_HOME: socket %q", got)
	}
	if got := ConfigPath(); got != "/srv/spuff/config.yaml" {
		t.Errorf("SPUFF_HOME: config %q", got)
	}
	t.Setenv("SPUFF_HOME", "~/elsewhere")
	if got := Home(); got != "/home/dev/elsewhere" {
		t.Errorf("SPUFF_HOME with ~: %q", got)
	}

	t.Setenv("XDG_DATA_HOME", "/data")
	if got := DefaultAuditPath(); got != filepath.FromSlash("/data/shed/extensions-audit.log") {
		t.Errorf("XDG_DATA_HOME: %q", got)
	}
	// The XDG spec says relative values are to be ignored.
	t.Setenv("XDG_DATA_HOME", "data")
	if got := DefaultAuditPath(); got != "/home/dev/.local/share/shed/extensions-audit.log" {
		t.Errorf("relative XDG_DATA_HOME: %q", got)
	}
}
