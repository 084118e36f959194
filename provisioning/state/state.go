// Package state keeps spuff's host-side state in ~/.spuff/state.db
// (SQLite, 0600): today the sheds the broker is attached to, so that a
// broker started at login reconnects them.
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

// Shed is one remembered attachment.
type Shed struct {
	Name     string
	URL      string
	Attached time.Time
}

// DB is the state database.
type DB struct {
	db *sql.DB
}

const schema = `
CREATE TABLE IF NOT EXISTS sheds (
	name        TEXT PRIMARY KEY,
	url         TEXT NOT NULL,
	attached_at INTEGER NOT NULL
);`

// Open opens (creating, 0600) the database at path.
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
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, fmt.Errorf("state: opening %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: preparing %s: %w", path, err)
	}
	return &DB{db: db}, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// SaveShed remembers an attachment, replacing one of the same name.
func (d *DB) SaveShed(ctx context.Context, s Shed) error {
	if s.Attached.IsZero() {
		s.Attached = time.Now()
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO sheds(name, url, attached_at) VALUES(?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET url = excluded.url, attached_at = excluded.attached_at`,
		s.Name, s.URL, s.Attached.Unix())
	if err != nil {
		return fmt.Errorf("state: saving shed %q: %w", s.Name, err)
	}
	return nil
}

// ErrNotFound means no shed of that name is remembered.
var ErrNotFound = errors.New("state: no such shed")

// ForgetShed drops an attachment.
func (d *DB) ForgetShed(ctx context.Context, name string) error {
	res, err := d.db.ExecContext(ctx, `DELETE FROM sheds WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("state: forgetting shed %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// Sheds lists remembered attachments by name.
func (d *DB) Sheds(ctx context.Context) ([]Shed, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name, url, attached_at FROM sheds ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("state: listing sheds: %w", err)
	}
	defer rows.Close()
	var out []Shed
	for rows.Next() {
		var s Shed
		var at int64
		if err := rows.Scan(&s.Name, &s.URL, &at); err != nil {
			return nil, fmt.Errorf("state: reading sheds: %w", err)
		}
		s.Attached = time.Unix(at, 0)
		out = append(out, s)
	}
	return out, rows.Err()
}
