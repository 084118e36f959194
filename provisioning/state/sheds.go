package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Lifecycle states of a made shed (DESIGN §8).
const (
	Creating      = "creating"
	Booting       = "booting"
	Bootstrapping = "bootstrapping"
	Ready         = "ready"
	Stopping      = "stopping"
	Stopped       = "stopped"
	Starting      = "starting"
	Destroying    = "destroying"
	Gone          = "gone"
	Failed        = "failed"
)

// Shed is one shed spuff made (or is making).
type Shed struct {
	Name       string
	Provider   string
	ProviderID string // empty until the provider answered Create
	State      string
	Reason     string // why it failed, or what the last step saw
	SSHAddr    string // host:port of its sshd, once known
	User       string // its login user
	Arch       string // uname -m, once bootstrapped
	// HostKeyAlias names the shed in ~/.spuff/known_hosts, so a loopback
	// port a later shed reuses never meets this shed's key.
	HostKeyAlias string
	// HostKey is the public host key pinned before boot ("" when the
	// provider has no private seed and the key is accepted on first use).
	HostKey string
	// IdleTimeout is the shed's own idle timeout (spuff up --idle-timeout;
	// 0 = never); nil: the config's (sheds.NAME.idle_timeout,
	// provision.idle_timeout) applies.
	IdleTimeout *time.Duration
	Created     time.Time
	Updated     time.Time
}

// ErrExists means a shed of that name already has a row.
var ErrExists = errors.New("state: a shed of that name exists")

const shedCols = `name, provider, provider_id, state, reason, ssh_addr, ssh_user, arch, host_key_alias, host_key, idle_timeout, idle_timeout_set, created_at, updated_at`

// CreateShed writes a new row; it fails with ErrExists if the name is taken.
func (d *DB) CreateShed(ctx context.Context, s Shed) error {
	now := time.Now()
	if s.Created.IsZero() {
		s.Created = now
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO sheds(`+shedCols+`) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		s.Name, s.Provider, s.ProviderID, s.State, s.Reason, s.SSHAddr, s.User, s.Arch, s.HostKeyAlias, s.HostKey,
		idleSeconds(s.IdleTimeout), s.IdleTimeout != nil, s.Created.UnixMilli(), now.UnixMilli())
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return fmt.Errorf("state: shed %q: %w", s.Name, ErrExists)
		}
		return fmt.Errorf("state: creating shed %q: %w", s.Name, err)
	}
	return nil
}

// UpdateShed rewrites the row of s.Name.
func (d *DB) UpdateShed(ctx context.Context, s Shed) error {
	res, err := d.db.ExecContext(ctx, `UPDATE sheds SET provider=?, provider_id=?, state=?, reason=?, ssh_addr=?, ssh_user=?, arch=?,
		host_key_alias=?, host_key=?, idle_timeout=?, idle_timeout_set=?, updated_at=? WHERE name=?`,
		s.Provider, s.ProviderID, s.State, s.Reason, s.SSHAddr, s.User, s.Arch, s.HostKeyAlias, s.HostKey,
		idleSeconds(s.IdleTimeout), s.IdleTimeout != nil, time.Now().UnixMilli(), s.Name)
	if err != nil {
		return fmt.Errorf("state: updating shed %q: %w", s.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %q", ErrNotFound, s.Name)
	}
	return nil
}

// GetShed reads one row.
func (d *DB) GetShed(ctx context.Context, name string) (Shed, error) {
	row := d.db.QueryRowContext(ctx, `SELECT `+shedCols+` FROM sheds WHERE name = ?`, name)
	s, err := scanShed(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Shed{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return s, err
}

// DeleteShed drops a row.
func (d *DB) DeleteShed(ctx context.Context, name string) error {
	res, err := d.db.ExecContext(ctx, `DELETE FROM sheds WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("state: deleting shed %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return nil
}

// Sheds lists every made shed by name.
func (d *DB) Sheds(ctx context.Context) ([]Shed, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+shedCols+` FROM sheds ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("state: listing sheds: %w", err)
	}
	defer rows.Close()
	var out []Shed
	for rows.Next() {
		s, err := scanShed(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

type scanner interface{ Scan(...any) error }

func scanShed(r scanner) (Shed, error) {
	var s Shed
	var idle, created, updated int64
	var idleSet bool
	err := r.Scan(&s.Name, &s.Provider, &s.ProviderID, &s.State, &s.Reason, &s.SSHAddr, &s.User, &s.Arch,
		&s.HostKeyAlias, &s.HostKey, &idle, &idleSet, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Shed{}, err
	}
	if err != nil {
		return Shed{}, fmt.Errorf("state: reading sheds: %w", err)
	}
	if idleSet {
		d := time.Duration(idle) * time.Second
		s.IdleTimeout = &d
	}
	s.Created, s.Updated = time.UnixMilli(created), time.UnixMilli(updated)
	return s, nil
}

// idleSeconds is the idle_timeout column's value: whole seconds, 0 when
// the shed has none of its own.
func idleSeconds(d *time.Duration) int64 {
	if d == nil {
		return 0
	}
	return int64(*d / time.Second)
}
