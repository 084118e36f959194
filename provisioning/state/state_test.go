package state

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAttachmentsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spuff", "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []Attachment{{Name: "web", URL: "unix:///a"}, {Name: "api", URL: "ssh://dev@h"}, {Name: "web", URL: "unix:///b"}} {
		if err := db.SaveAttachment(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.ForgetAttachment(ctx, "api"); err != nil {
		t.Fatal(err)
	}
	if err := db.ForgetAttachment(ctx, "api"); !errors.Is(err, ErrNotFound) {
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
	as, err := db.Attachments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].Name != "web" || as[0].URL != "unix:///b" || as[0].Attached.IsZero() {
		t.Fatalf("after reopen: %+v", as)
	}
}

// rawDB opens path without migrating, to build databases of older versions.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func userVersion(t *testing.T, path string) int {
	t.Helper()
	var v int
	if err := rawDB(t, path).QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// The schema spuff wrote before provisioning: a sheds table of
// attachments and user_version 0.
const schemaV0 = `CREATE TABLE sheds (name TEXT PRIMARY KEY, url TEXT NOT NULL, attached_at INTEGER NOT NULL);
INSERT INTO sheds VALUES ('old', 'ssh://dev@203.0.113.7:22', 1700000000);`

func TestMigratesTodaysSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	if _, err := rawDB(t, path).Exec(schemaV0); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	as, err := db.Attachments(ctx)
	if err != nil || len(as) != 1 || as[0].Name != "old" || as[0].URL != "ssh://dev@203.0.113.7:22" || as[0].Attached.Unix() != 1700000000 {
		t.Fatalf("the old attachment after migrating: %+v %v", as, err)
	}
	sheds, err := db.Sheds(ctx)
	if err != nil || len(sheds) != 0 {
		t.Fatalf("made sheds after migrating: %+v %v", sheds, err)
	}
	db.Close()
	if v := userVersion(t, path); v != Version {
		t.Fatalf("user_version %d, want %d", v, Version)
	}
	// Opening again is a no-op.
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
}

func TestFailedMigrationKeepsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	// Version 1 with a table in the way of step 2.
	if _, err := rawDB(t, path).Exec(schemaV0 + `CREATE TABLE attachments (x INTEGER); PRAGMA user_version = 1;`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "version 2") || !strings.Contains(err.Error(), "left as it was") {
		t.Fatalf("open: %v, want a failed step 2", err)
	}
	if v := userVersion(t, path); v != 1 {
		t.Fatalf("user_version %d after a failed step, want 1", v)
	}
	var n int
	if err := rawDB(t, path).QueryRow(`SELECT count(*) FROM sheds WHERE name = 'old'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the old row after a failed migration: %d %v", n, err)
	}
}

func TestRefusesANewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if _, err := rawDB(t, path).Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("open: %v, want a refusal", err)
	}
	if v := userVersion(t, path); v != 99 {
		t.Fatalf("user_version %d, want it untouched", v)
	}
}

func TestShedRows(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := Shed{Name: "demo", Provider: "qemu", State: Creating, User: "dev", HostKeyAlias: "spuff-demo",
		HostKey: "ssh-ed25519 AAAA", IdleTimeout: new(2 * time.Hour)}
	if err := db.CreateShed(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateShed(ctx, s); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	s.ProviderID, s.State, s.SSHAddr, s.Arch = "qemu-1", Ready, "127.0.0.1:2222", "x86_64"
	if err := db.UpdateShed(ctx, s); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetShed(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if got.ProviderID != "qemu-1" || got.State != Ready || got.SSHAddr != "127.0.0.1:2222" || got.IdleTimeout == nil || *got.IdleTimeout != 2*time.Hour ||
		got.HostKeyAlias != "spuff-demo" || got.Created.IsZero() || got.Arch != "x86_64" {
		t.Fatalf("row: %+v", got)
	}
	if err := db.UpdateShed(ctx, Shed{Name: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a missing row: %v", err)
	}
	if err := db.DeleteShed(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetShed(ctx, "demo"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

// TestMigratesAVersion2Row: a row written before the shed's own idle
// timeout existed (version 2 copied the config's) follows the config after
// step 3; a row's own timeout, 0 (never) included, survives a reopen.
func TestMigratesAVersion2Row(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	raw := rawDB(t, path)
	if _, err := raw.Exec(migrations[0] + migrations[1] + `INSERT INTO sheds(name, provider, state, ssh_user, host_key_alias, idle_timeout, created_at, updated_at)
		VALUES ('v2', 'qemu', 'ready', 'dev', 'spuff-v2', 7200, 1700000000000, 1700000000000); PRAGMA user_version = 2;`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.GetShed(ctx, "v2")
	if err != nil || got.IdleTimeout != nil || got.State != Ready {
		t.Fatalf("the version 2 row: %+v %v, want no idle timeout of its own", got, err)
	}
	for _, d := range []*time.Duration{new(time.Duration(0)), new(time.Minute), nil} {
		s := Shed{Name: "own", Provider: "qemu", State: Ready, User: "dev", HostKeyAlias: "spuff-own", IdleTimeout: d}
		if err := db.CreateShed(ctx, s); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetShed(ctx, "own")
		if err != nil || (d == nil) != (got.IdleTimeout == nil) || (d != nil && *got.IdleTimeout != *d) {
			t.Fatalf("idle timeout %v read back as %v (%v)", d, got.IdleTimeout, err)
		}
		if err := db.DeleteShed(ctx, "own"); err != nil {
			t.Fatal(err)
		}
	}
}
