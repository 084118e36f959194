// Package agentapi is the shed's local HTTP API on 127.0.0.1:7575: health,
// status, metrics, idle time and heartbeat, for tools in the shed and for
// idle shutdown. Every route but /health needs the agent token; without a
// token it refuses to start rather than serve openly.
package agentapi

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Source is what the API reports on. IdleSince and Heartbeat read and
// touch the shed's one idle clock, the one agent/idle on the bus reads.
type Source interface {
	StatusJSON() any
	MetricsJSON() any
	IdleSince() time.Time
	Heartbeat()
}

// API serves the agent routes.
type API struct {
	token []byte
}

// New returns the API, or an error when token is empty: with no token the
// shed's agent API does not start at all, rather than start open.
func New(token string) (*API, error) {
	if strings.TrimSpace(token) == "" {
		return nil, errors.New("agentapi: no agent token configured (SPUFF_AGENT_TOKEN); refusing to serve without one")
	}
	return &API{token: []byte(token)}, nil
}

// Listen binds addr, which must be a loopback address.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("agentapi: address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("agentapi: %q is not a loopback address; the agent API binds 127.0.0.1 only", addr)
	}
	return net.Listen("tcp", addr)
}

// Handler returns the routes, reporting on src.
func (a *API) Handler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /status", a.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, src.StatusJSON())
	}))
	mux.Handle("GET /metrics", a.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, src.MetricsJSON())
	}))
	mux.Handle("GET /idle", a.auth(func(w http.ResponseWriter, r *http.Request) {
		last := src.IdleSince()
		writeJSON(w, http.StatusOK, map[string]any{"idle_seconds": max(0, int64(time.Since(last).Seconds())), "since": last.UTC()})
	}))
	mux.Handle("POST /heartbeat", a.auth(func(w http.ResponseWriter, r *http.Request) {
		src.Heartbeat()
		w.WriteHeader(http.StatusNoContent)
	}))
	return mux
}

// auth accepts "Authorization: Bearer TOKEN" or the bare token, compared in
// constant time.
func (a *API) auth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), a.token) != 1 {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong agent token"})
			return
		}
		next(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
