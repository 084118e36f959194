// Package bustest makes the envelopes tests send as a shed would: a ping
// request, and request ids carrying a chosen time (a shed whose clock is
// off, or a replay).
package bustest

import (
	"encoding/binary"
	"time"

	"github.com/google/uuid"

	"github.com/spuff-dev/spuff/guest/bus"
)

// Ping is a ping request with id.
func Ping(id string) *bus.Envelope {
	return &bus.Envelope{V: bus.Version, ID: id, Type: bus.TypeRequest, NS: bus.NSAgent, Op: bus.OpPing}
}

// IDAt is a fresh UUIDv7 carrying time t, as a shed whose clock reads t
// would make.
func IDAt(t time.Time) string {
	u := uuid.Must(uuid.NewV7())
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(u[:6], ms[2:])
	return u.String()
}
