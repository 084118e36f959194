// Package state keeps spuff's host-side state in ~/.spuff/state.db
// (SQLite, 0600): the attachments the broker reconnects at start, and the
// sheds spuff made (provider, machine id, lifecycle state, ssh address,
// pinned host key). The schema moves forward by numbered migrations; a
// failed open or migration leaves the file as it was, never deleted.
package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver
)

// Attachment is one remembered attachment: a shed the broker dials.
type Attachment struct {
	Name     string
	URL      string
	Attached time.Time
}

// DB is the state database.
type DB struct {
	db *sql.DB
}

// migrations[i] moves the schema from version i to i+1 (PRAGMA
// user_version). Append only: a released step is never edited.
var migrations = []string{
	// 1: the attachments, as spuff before provisioning kept them (a
	// database of that age has user_version 0 and this table already).
	`CREATE TABLE IF NOT EXISTS sheds (
		name        TEXT PRIMARY KEY,
		url         TEXT NOT NULL,
		attached_at INTEGER NOT NULL
	);`,
	// 2: "shed" now means a machine spuff made; attachments get their own
	// word and table.
	`ALTER TABLE sheds RENAME TO attachments;
	CREATE TABLE sheds (
		name           TEXT PRIMARY KEY,
		provider       TEXT NOT NULL,
		provider_id    TEXT NOT NULL DEFAULT '',
		state          TEXT NOT NULL,
		reason         TEXT NOT NULL DEFAULT '',
		ssh_addr       TEXT NOT NULL DEFAULT '',
		ssh_user       TEXT NOT NULL,
		arch           TEXT NOT NULL DEFAULT '',
		host_key_alias TEXT NOT NULL,
		host_key       TEXT NOT NULL DEFAULT '',
		idle_timeout   INTEGER NOT NULL DEFAULT 0,
		created_at     INTEGER NOT NULL,
		updated_at     INTEGER NOT NULL
	);`,
	// 3: idle_timeout is the shed's own (spuff up --idle-timeout) only when
	// idle_timeout_set; otherwise the config's applies, read when it is
	// needed. Rows before this step copied the config at up time and follow
	// the config from now on.
	`ALTER TABLE sheds ADD COLUMN idle_timeout_set INTEGER NOT NULL DEFAULT 0;`,
}

// Version is the schema version this build writes.
var Version = len(migrations)

// Open opens (creating, 0600) the database at path and brings its schema
// up to Version.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state: creating %s: %w", filepath.Dir(path), err)
	}
	// Create the file ourselves so it is 0600 from its first byte.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state: opening %s: %w", path, err)
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("state: chmod %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("state: opening %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: %s: %w (the file is left as it was)", path, err)
	}
	return &DB{db: db}, nil
}

// migrate runs each missing step in its own transaction, together with
// the version bump, so a failure leaves the last good version.
func migrate(db *sql.DB) error {
	var v int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("reading the schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this spuff knows (%d); use the newer spuff", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		tx, err := db.Begin()
		if err != nil {
			return fmt.Errorf("migrating to version %d: %w", v+1, err)
		}
		if _, err := tx.Exec(migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrating to version %d: %w", v+1, err)
		}
		// PRAGMA takes no placeholders; v is ours.
		if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrating to version %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrating to version %d: %w", v+1, err)
		}
	}
	return nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// SaveAttachment remembers an attachment, replacing one of the same name.
func (d *DB) SaveAttachment(ctx context.Context, a Attachment) error {
	if a.Attached.IsZero() {
		a.Attached = time.Now()
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO attachments(name, url, attached_at) VALUES(?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET url = excluded.url, attached_at = excluded.attached_at`,
		a.Name, a.URL, a.Attached.Unix())
	if err != nil {
		return fmt.Errorf("state: saving attachment %q: %w", a.Name, err)
	}
	return nil
}

// ErrNotFound means no row of that name exists.
var ErrNotFound = errors.New("state: no such shed")

// ForgetAttachment drops an attachment.
func (d *DB) ForgetAttachment(ctx context.Context, name string) error {
	res, err := d.db.ExecContext(ctx, `DELETE FROM attachments WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("state: forgetting attachment %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: attachment %q", ErrNotFound, name)
	}
	return nil
}

// Attachments lists remembered attachments by name.
func (d *DB) Attachments(ctx context.Context) ([]Attachment, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name, url, attached_at FROM attachments ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("state: listing attachments: %w", err)
	}
	defer rows.Close()
	var out []Attachment
	for rows.Next() {
		var a Attachment
		var at int64
		if err := rows.Scan(&a.Name, &a.URL, &at); err != nil {
			return nil, fmt.Errorf("state: reading attachments: %w", err)
		}
		a.Attached = time.Unix(at, 0)
		out = append(out, a)
	}
	return out, rows.Err()
}
