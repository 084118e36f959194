// Package hcloudfake is a fake Hetzner Cloud API v1 for tests: real HTTP
// on loopback replaying the documented shapes (status codes, JSON bodies,
// {"error":{code,message}}, meta.pagination, label selectors, RateLimit-*
// headers, 429 rate_limit_exceeded, not_found, servers going initializing
// → running over successive reads, a firewall that cannot be deleted while
// applied), recording what was sent so a test can assert it, and noting
// every place the token turns up other than the Authorization header.
package hcloudfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/provisioning/internal/cloudfake"
)

// Request is one request the fake received.
type Request struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
	At                  time.Time
}

// Rule is a firewall rule as sent.
type Rule struct {
	Direction string   `json:"direction"`
	Protocol  string   `json:"protocol"`
	Port      *string  `json:"port"`
	SourceIPs []string `json:"source_ips"`
	DestIPs   []string `json:"destination_ips"`
}

// Server is the fake's record of a server.
type Server struct {
	ID         int64             `json:"id"`
	Name       string            `json:"name"`
	Status     string            `json:"status"`
	ServerType string            `json:"server_type"`
	Image      string            `json:"image"`
	Location   string            `json:"location"`
	SSHKeys    []json.RawMessage `json:"ssh_keys"`
	UserData   string            `json:"user_data"`
	Labels     map[string]string `json:"labels"`
	Firewalls  []int64
	reads      int
}

// Firewall is the fake's record of a firewall.
type Firewall struct {
	ID     int64             `json:"id"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	Rules  []Rule            `json:"rules"`
}

// Key is a project ssh key.
type Key struct {
	ID          int64             `json:"id"`
	Name        string            `json:"name"`
	PublicKey   string            `json:"public_key"`
	Fingerprint string            `json:"fingerprint"`
	Labels      map[string]string `json:"labels"`
	Created     string            `json:"created"`
}

// Fake is the fake API.
type Fake struct {
	URL   string
	Token string
	// IP is the public IPv4 a server has.
	IP string
	// RunningAfter is how many reads of a server say "initializing" first.
	RunningAfter int
	// NeverRunning keeps servers initializing for ever.
	NeverRunning bool
	// FailFirewall makes POST /firewalls fail with this error code.
	FailFirewall string
	// FailServer makes POST /servers fail with this error code.
	FailServer string
	// PerPageCap caps per_page, to make short lists span pages.
	PerPageCap int
	// RaceKeyCreate makes POST /ssh_keys find the key just registered by
	// someone else (it is added, and the POST gets uniqueness_error).
	RaceKeyCreate bool
	// HoldCreate, when set, makes POST /servers make the server and then
	// hold the response until HoldCreate is closed or the client is gone:
	// a test kills spuff-app in that window, between the create and the
	// state update, deterministically.
	HoldCreate chan struct{}
	// StallCreate, when set, holds POST /servers before the server is
	// made, until StallCreate is closed or the client is gone (then none
	// is made): a test kills spuff-app and spuff-cloud in that window,
	// when the login key and the firewall exist and no server does.
	StallCreate chan struct{}
	stalled     atomic.Int32

	srv        *httptest.Server
	mu         sync.Mutex
	remaining  int
	throttle   int
	retryAfter string
	requests   []Request
	violations []string
	nextID     int64
	servers    map[int64]*Server
	firewalls  map[int64]*Firewall
	keys       map[int64]*Key
}

// New starts a fake on loopback, closed when the test ends.
func New(t testing.TB, token string) *Fake {
	f := &Fake{Token: token, IP: "198.51.100.20", RunningAfter: 1, remaining: 3600, nextID: 4000,
		servers: map[int64]*Server{}, firewalls: map[int64]*Firewall{}, keys: map[int64]*Key{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

// Throttle makes the next n requests answer 429 rate_limit_exceeded, with
// retryAfter as Retry-After ("" sends none).
func (f *Fake) Throttle(n int, retryAfter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle, f.retryAfter = n, retryAfter
}

// AddKey puts a key in the project.
func (f *Fake) AddKey(name, publicKey string) Key {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.addKey(name, publicKey, nil)
}

// AddServer puts a running server in the project.
func (f *Fake) AddServer(name string, labels map[string]string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.servers[f.nextID] = &Server{ID: f.nextID, Name: name, Status: "running", ServerType: "cx22", Image: "debian-12", Location: "fsn1", Labels: labels}
	return f.nextID
}

// Requests returns what the fake received, in order.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// Violations lists each place the token appeared outside the
// Authorization header, and requests that would get a root password.
func (f *Fake) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.violations)
}

// Servers returns the servers that exist.
func (f *Fake) Servers() []Server { return values(f, f.servers) }

// Firewalls returns the firewalls that exist.
func (f *Fake) Firewalls() []Firewall { return values(f, f.firewalls) }

// Keys returns the project's keys.
func (f *Fake) Keys() []Key { return values(f, f.keys) }

func values[V any](f *Fake, m map[int64]*V) []V {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []V
	for _, id := range sorted(m) {
		out = append(out, *m[id])
	}
	return out
}

func sorted[V any](m map[int64]V) []int64 {
	ks := make([]int64, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (f *Fake) addKey(name, publicKey string, labels map[string]string) *Key {
	f.nextID++
	if labels == nil {
		labels = map[string]string{}
	}
	k := &Key{ID: f.nextID, Name: name, PublicKey: publicKey, Fingerprint: Fingerprint(publicKey), Labels: labels, Created: "2026-12-01T10:00:00+00:00"}
	f.keys[k.ID] = k
	return k
}

// Fingerprint is the provider's key fingerprint: colon-separated MD5 of
// the key blob.
func Fingerprint(authorized string) string { return cloudfake.Fingerprint(authorized) }

var codes = map[string]int{
	"unauthorized": 401, "forbidden": 403, "not_found": 404, "invalid_input": 400, "json_error": 400,
	"uniqueness_error": 409, "resource_limit_exceeded": 403, "rate_limit_exceeded": 429,
	"resource_in_use": 422, "resource_unavailable": 412, "server_error": 500, "service_error": 503,
}

func (f *Fake) fail(w http.ResponseWriter, code, msg string) {
	st := codes[code]
	if st == 0 {
		st = 422
	}
	f.reply(w, st, map[string]any{"error": map[string]any{"code": code, "message": msg, "details": nil}})
}

var (
	labelKey = regexp.MustCompile(`^([a-z0-9A-Z]([-a-zA-Z0-9_.]{0,61}[a-z0-9A-Z])?)$`)
	labelVal = regexp.MustCompile(`^(([a-z0-9A-Z]([-a-zA-Z0-9_.]{0,61}[a-z0-9A-Z])?)?)$`)
	name     = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,61}[a-zA-Z0-9])?$`)
)

func badLabels(l map[string]string) bool {
	for k, v := range l {
		if !labelKey.MatchString(k) || !labelVal.MatchString(v) {
			return true
		}
	}
	return false
}

// matches applies a label selector ("k", "!k", "k=v", comma-joined).
func matches(sel string, l map[string]string) bool {
	if sel == "" {
		return true
	}
	for _, term := range strings.Split(sel, ",") {
		if k, ok := strings.CutPrefix(term, "!"); ok {
			if _, has := l[k]; has {
				return false
			}
			continue
		}
		k, v, eq := strings.Cut(term, "=")
		got, ok := l[k]
		if !ok || (eq && got != v) {
			return false
		}
	}
	return true
}

// Stalled is how many creates StallCreate holds now.
func (f *Fake) Stalled() int { return int(f.stalled.Load()) }

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	create := r.Method == "POST" && r.URL.Path == "/servers"
	if f.StallCreate != nil && create {
		cloudfake.Stall(w, r, f.StallCreate, &f.stalled, func(w http.ResponseWriter) { f.locked(w, r, body) })
		return
	}
	if f.HoldCreate != nil && create {
		cloudfake.Held(w, r, f.HoldCreate, func(w http.ResponseWriter) { f.locked(w, r, body) })
		return
	}
	f.locked(w, r, body)
}

func (f *Fake) locked(w http.ResponseWriter, r *http.Request, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body, At: time.Now()})
	f.audit(r, body)
	if f.remaining > 0 {
		f.remaining--
	}
	w.Header().Set("RateLimit-Limit", "3600")
	w.Header().Set("RateLimit-Remaining", strconv.Itoa(f.remaining))
	w.Header().Set("RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
	if r.Header.Get("Authorization") != "Bearer "+f.Token {
		f.fail(w, "unauthorized", "unable to authenticate")
		return
	}
	if f.throttle > 0 {
		f.throttle--
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		f.fail(w, "rate_limit_exceeded", "limit of 3600 requests per hour reached")
		return
	}
	q := r.URL.Query()
	seg := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var id int64
	if len(seg) == 2 {
		id, _ = strconv.ParseInt(seg[1], 10, 64)
	}
	switch {
	case r.Method == "POST" && r.URL.Path == "/servers":
		f.createServer(w, body)
	case r.Method == "GET" && r.URL.Path == "/servers":
		var out []any
		for _, i := range sorted(f.servers) {
			if s := f.servers[i]; matches(q.Get("label_selector"), s.Labels) && (q.Get("name") == "" || q.Get("name") == s.Name) {
				out = append(out, f.serverJSON(s))
			}
		}
		f.page(w, r, "servers", out)
	case seg[0] == "servers" && len(seg) == 2:
		s, ok := f.servers[id]
		if !ok {
			f.fail(w, "not_found", fmt.Sprintf("server with ID '%s' not found", seg[1]))
			return
		}
		switch r.Method {
		case "GET":
			s.reads++
			if s.Status == "initializing" && !f.NeverRunning && s.reads > f.RunningAfter {
				s.Status = "running"
			}
			f.reply(w, 200, map[string]any{"server": f.serverJSON(s)})
		case "DELETE":
			delete(f.servers, id)
			f.reply(w, 200, map[string]any{"action": f.action("delete_server", id, "server")})
		}
	case r.Method == "POST" && r.URL.Path == "/firewalls":
		if f.FailFirewall != "" {
			f.fail(w, f.FailFirewall, "firewall cannot be created")
			return
		}
		var fw Firewall
		if err := json.Unmarshal(body, &fw); err != nil || !name.MatchString(fw.Name) || badLabels(fw.Labels) {
			f.fail(w, "invalid_input", "invalid input in fields 'name', 'labels'")
			return
		}
		for _, o := range f.firewalls {
			if o.Name == fw.Name {
				f.fail(w, "uniqueness_error", "firewall name is already used")
				return
			}
		}
		f.nextID++
		fw.ID = f.nextID
		f.firewalls[fw.ID] = &fw
		f.reply(w, 201, map[string]any{"firewall": f.firewallJSON(&fw), "actions": []any{}})
	case r.Method == "GET" && r.URL.Path == "/firewalls":
		var out []any
		for _, i := range sorted(f.firewalls) {
			if fw := f.firewalls[i]; matches(q.Get("label_selector"), fw.Labels) {
				out = append(out, f.firewallJSON(fw))
			}
		}
		f.page(w, r, "firewalls", out)
	case seg[0] == "firewalls" && len(seg) == 2:
		fw, ok := f.firewalls[id]
		if !ok {
			f.fail(w, "not_found", fmt.Sprintf("firewall with ID '%s' not found", seg[1]))
			return
		}
		switch r.Method {
		case "PUT":
			var in struct {
				Name   *string           `json:"name"`
				Labels map[string]string `json:"labels"`
			}
			if json.Unmarshal(body, &in) != nil || badLabels(in.Labels) {
				f.fail(w, "invalid_input", "invalid input in field 'labels'")
				return
			}
			if in.Name != nil {
				fw.Name = *in.Name
			}
			if in.Labels != nil {
				fw.Labels = in.Labels
			}
			f.reply(w, 200, map[string]any{"firewall": f.firewallJSON(fw)})
		case "DELETE":
			for _, s := range f.servers {
				if slices.Contains(s.Firewalls, id) {
					f.fail(w, "resource_in_use", "firewall is still applied to a server")
					return
				}
			}
			delete(f.firewalls, id)
			w.WriteHeader(204)
		}
	case r.Method == "GET" && r.URL.Path == "/ssh_keys":
		var out []any
		for _, i := range sorted(f.keys) {
			k := f.keys[i]
			if matches(q.Get("label_selector"), k.Labels) && (q.Get("fingerprint") == "" || q.Get("fingerprint") == k.Fingerprint) {
				out = append(out, k)
			}
		}
		f.page(w, r, "ssh_keys", out)
	case r.Method == "POST" && r.URL.Path == "/ssh_keys":
		var in struct {
			Name      string            `json:"name"`
			PublicKey string            `json:"public_key"`
			Labels    map[string]string `json:"labels"`
		}
		if json.Unmarshal(body, &in) != nil || in.Name == "" || Fingerprint(in.PublicKey) == "" || badLabels(in.Labels) {
			f.fail(w, "invalid_input", "invalid input in fields 'name', 'public_key'")
			return
		}
		if f.RaceKeyCreate {
			f.addKey("other-laptop", in.PublicKey, nil)
		}
		for _, k := range f.keys {
			if k.Name == in.Name || k.Fingerprint == Fingerprint(in.PublicKey) {
				f.fail(w, "uniqueness_error", "SSH key with the same fingerprint already exists")
				return
			}
		}
		f.reply(w, 201, map[string]any{"ssh_key": f.addKey(in.Name, in.PublicKey, in.Labels)})
	case seg[0] == "ssh_keys" && len(seg) == 2:
		k, ok := f.keys[id]
		if !ok {
			f.fail(w, "not_found", fmt.Sprintf("SSH key with ID '%s' not found", seg[1]))
			return
		}
		switch r.Method {
		case "PUT":
			var in struct {
				Name   *string           `json:"name"`
				Labels map[string]string `json:"labels"`
			}
			if json.Unmarshal(body, &in) != nil || badLabels(in.Labels) {
				f.fail(w, "invalid_input", "invalid input in field 'labels'")
				return
			}
			if in.Name != nil {
				k.Name = *in.Name
			}
			if in.Labels != nil {
				k.Labels = in.Labels
			}
			f.reply(w, 200, map[string]any{"ssh_key": k})
		case "DELETE":
			delete(f.keys, id)
			w.WriteHeader(204)
		}
	default:
		f.fail(w, "not_found", "not found")
	}
}

func (f *Fake) audit(r *http.Request, body []byte) {
	f.violations = append(f.violations, cloudfake.TokenLeaks(r, body, f.Token)...)
}

func (f *Fake) createServer(w http.ResponseWriter, body []byte) {
	var in struct {
		Server
		Firewalls []struct {
			Firewall int64 `json:"firewall"`
		} `json:"firewalls"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		f.fail(w, "json_error", "invalid JSON")
		return
	}
	s := in.Server
	switch {
	case f.FailServer != "":
		f.fail(w, f.FailServer, "server cannot be created")
		return
	case !name.MatchString(s.Name):
		f.fail(w, "invalid_input", "invalid input in field 'name'")
		return
	case s.ServerType == "no-such-type":
		f.fail(w, "invalid_input", "server type no-such-type not found")
		return
	case s.Location == "nowhere1":
		f.fail(w, "invalid_input", "location nowhere1 not found")
		return
	case len(s.UserData) > 32<<10:
		f.fail(w, "invalid_input", "invalid input in field 'user_data'")
		return
	case badLabels(s.Labels):
		f.fail(w, "invalid_input", "invalid input in field 'labels'")
		return
	}
	for _, o := range f.servers {
		if o.Name == s.Name {
			f.fail(w, "uniqueness_error", "server name is already used")
			return
		}
	}
	for _, fw := range in.Firewalls {
		if _, ok := f.firewalls[fw.Firewall]; !ok {
			f.fail(w, "not_found", "firewall not found")
			return
		}
		s.Firewalls = append(s.Firewalls, fw.Firewall)
	}
	var rootPassword any
	if len(s.SSHKeys) == 0 {
		rootPassword = "YItygq1v3GYjjMomLaKc"
		f.violations = append(f.violations, "POST /servers: no ssh_keys (Hetzner would set a root password)")
	}
	f.nextID++
	s.ID = f.nextID
	s.Status = "initializing"
	f.servers[s.ID] = &s
	f.reply(w, 201, map[string]any{
		"server": f.serverJSON(&s), "action": f.action("create_server", s.ID, "server"),
		"next_actions": []any{f.action("start_server", s.ID, "server")}, "root_password": rootPassword,
	})
}

func (f *Fake) action(cmd string, id int64, typ string) map[string]any {
	f.nextID++
	return map[string]any{"id": f.nextID, "command": cmd, "status": "running", "progress": 0,
		"started": "2026-12-01T10:00:00+00:00", "finished": nil, "error": nil,
		"resources": []any{map[string]any{"id": id, "type": typ}}}
}

func (f *Fake) serverJSON(s *Server) map[string]any {
	fws := []any{}
	for _, id := range s.Firewalls {
		fws = append(fws, map[string]any{"id": id, "status": "applied"})
	}
	labels := s.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return map[string]any{
		"id": s.ID, "name": s.Name, "status": s.Status, "created": "2026-12-01T10:00:00+00:00",
		"public_net": map[string]any{
			"ipv4":         map[string]any{"id": s.ID + 1, "ip": f.IP, "blocked": false, "dns_ptr": "static.example"},
			"ipv6":         map[string]any{"id": s.ID + 2, "ip": "2001:db8::/64", "blocked": false, "dns_ptr": []any{}},
			"floating_ips": []any{}, "firewalls": fws,
		},
		"private_net": []any{},
		"server_type": map[string]any{"id": 104, "name": s.ServerType, "cores": 2, "memory": 4.0, "disk": 40, "architecture": "x86"},
		"location":    map[string]any{"id": 1, "name": s.Location, "network_zone": "eu-central"},
		"image":       map[string]any{"id": 114690387, "name": s.Image, "type": "system", "os_flavor": "debian", "architecture": "x86"},
		"labels":      labels, "protection": map[string]any{"delete": false, "rebuild": false},
		"volumes": []any{}, "load_balancers": []any{}, "included_traffic": 21990232555520, "primary_disk_size": 40, "locked": false,
	}
}

func (f *Fake) firewallJSON(fw *Firewall) map[string]any {
	applied := []any{}
	for _, i := range sorted(f.servers) {
		if slices.Contains(f.servers[i].Firewalls, fw.ID) {
			applied = append(applied, map[string]any{"type": "server", "server": map[string]any{"id": i}})
		}
	}
	labels := fw.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return map[string]any{"id": fw.ID, "name": fw.Name, "labels": labels, "created": "2026-12-01T10:00:00+00:00", "rules": fw.Rules, "applied_to": applied}
}

// page replies with one page, shaped like Hetzner's lists:
// {key: [...], meta: {pagination: {page, per_page, previous_page,
// next_page, last_page, total_entries}}}.
func (f *Fake) page(w http.ResponseWriter, r *http.Request, key string, items []any) {
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 1)
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per < 1 {
		per = 25
	}
	per = min(per, 50)
	if f.PerPageCap > 0 {
		per = min(per, f.PerPageCap)
	}
	total := len(items)
	last := max(1, (total+per-1)/per)
	lo := min((page-1)*per, total)
	hi := min(lo+per, total)
	if items == nil {
		items = []any{}
	}
	var prev, next any
	if page > 1 {
		prev = page - 1
	}
	if page < last {
		next = page + 1
	}
	f.reply(w, 200, map[string]any{key: items[lo:hi], "meta": map[string]any{"pagination": map[string]any{
		"page": page, "per_page": per, "previous_page": prev, "next_page": next, "last_page": last, "total_entries": total}}})
}

func (f *Fake) reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
