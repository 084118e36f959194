package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestShedsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spuff", "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []Shed{{Name: "web", URL: "unix:///a"}, {Name: "api", URL: "ssh://dev@h"}, {Name: "web", URL: "unix:///b"}} {
		if err := db.SaveShed(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.ForgetShed(ctx, "api"); err != nil {
		t.Fatal(err)
	}
	if err := db.ForgetShed(ctx, "api"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("forgetting twice: %v", err)
	}
	db.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state.db: %v %v, want 0600", fi, err)
	}
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sheds, err := db.Sheds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sheds) != 1 || sheds[0].Name != "web" || sheds[0].URL != "unix:///b" || sheds[0].Attached.IsZero() {
		t.Fatalf("after reopen: %+v", sheds)
	}
}
