package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// FreeAddr returns a 127.0.0.1:PORT that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) string {
	_, port, _ := net.SplitHostPort(FreeAddr(t))
	return port
}

// RandomSecret returns a fresh secret with the given prefix, unique enough
// to grep for when a test checks that it leaked nowhere.
func RandomSecret(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Buffer collects a process's output from several goroutines at once. It
// stops growing at 1 MiB so a chatty process cannot eat the test's memory.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Percentiles sorts samples in place and returns their p50 and p99 in µs,
// the figures every benchmark here prints beside its peer's.
func Percentiles(samples []time.Duration) (p50, p99 float64) {
	if len(samples) == 0 {
		return 0, 0
	}
	slices.Sort(samples)
	at := func(q float64) float64 {
		return float64(samples[int(q*float64(len(samples)-1))].Nanoseconds()) / 1e3
	}
	return at(0.50), at(0.99)
}

// ReportPercentiles reports samples' p50 and p99 as NAME-p50-µs and
// NAME-p99-µs ("p50-µs" and "p99-µs" when name is empty) and returns the p50,
// which figures beside a peer are divided by.
func ReportPercentiles(b *testing.B, name string, samples []time.Duration) float64 {
	p50, p99 := Percentiles(samples)
	if name != "" {
		name += "-"
	}
	b.ReportMetric(p50, name+"p50-µs")
	b.ReportMetric(p99, name+"p99-µs")
	return p50
}
