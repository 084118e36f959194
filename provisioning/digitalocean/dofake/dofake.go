// Package dofake is a fake DigitalOcean API v2 for tests: real HTTP on
// loopback replaying the documented shapes (status codes, JSON bodies,
// links/meta pagination, ratelimit-* headers, 429 with Retry-After, 404,
// droplets going new → active over successive reads), recording what was
// sent so a test can assert it, and noting every place the token turns
// up other than the Authorization header, and every droplet made with no
// firewall covering it (its sshd would face the internet until one came).
package dofake

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

// Droplet is the fake's record of a droplet.
type Droplet struct {
	ID       int      `json:"id"`
	Name     string   `json:"name"`
	Status   string   `json:"status"`
	Region   string   `json:"region"`
	Size     string   `json:"size"`
	Image    string   `json:"image"`
	SSHKeys  []any    `json:"ssh_keys"`
	UserData string   `json:"user_data"`
	Tags     []string `json:"tags"`
	reads    int
}

// Firewall is the fake's record of a firewall, as sent.
type Firewall struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	InboundRules  []json.RawMessage `json:"inbound_rules"`
	OutboundRules []json.RawMessage `json:"outbound_rules"`
	DropletIDs    []int             `json:"droplet_ids"`
	Tags          []string          `json:"tags"`
}

// Key is an account ssh key.
type Key struct {
	ID          int    `json:"id"`
	Name        string `json:"name"`
	PublicKey   string `json:"public_key"`
	Fingerprint string `json:"fingerprint"`
}

// Server is the fake API.
type Server struct {
	URL   string
	Token string
	// IP is the public IPv4 a droplet gets when it becomes active.
	IP string
	// ActiveAfter is how many reads of a droplet say "new" first.
	ActiveAfter int
	// NeverActive keeps droplets "new" for ever.
	NeverActive bool
	// FailFirewall makes POST /v2/firewalls answer this status (0 = ok).
	FailFirewall int
	// FailDestroy and FailFirewallDelete make DELETE of a droplet or a
	// firewall answer this status (0 = ok), removing nothing.
	FailDestroy, FailFirewallDelete int
	// PerPageCap caps per_page, to make short lists span pages.
	PerPageCap int
	// RaceKeyCreate makes POST /v2/account/keys find the key just
	// registered by someone else (it is added, and the POST gets 422).
	RaceKeyCreate bool
	// HoldCreate, when set, makes POST /v2/droplets make the droplet and
	// then hold the response until HoldCreate is closed or the client is
	// gone: a test kills spuff-app in that window, between the create and
	// the state update, deterministically.
	HoldCreate chan struct{}
	// StallCreate, when set, holds POST /v2/droplets before the droplet is
	// made, until StallCreate is closed or the client is gone (then none
	// is made): a test kills spuff-app and spuff-cloud in that window,
	// when the login key is registered and no droplet exists.
	StallCreate chan struct{}
	stalled     atomic.Int32
	// OnDelete, when set, is called with each droplet deleted, outside the
	// fake's lock and before the DELETE is answered (a test stops the VM
	// it booted for the droplet, as the cloud would).
	OnDelete func(Droplet)

	srv *httptest.Server
	mu  sync.Mutex
	// rate limit state
	limit, remaining int
	throttle         int
	retryAfter       string
	requests         []Request
	violations       []string
	nextID           int
	droplets         map[int]*Droplet
	firewalls        map[string]*Firewall
	tags             map[string]bool
	keys             map[int]*Key
	deleted          []Droplet // for OnDelete, once the lock is let go
}

// New starts a fake on loopback, closed when the test ends.
func New(t testing.TB, token string) *Server {
	s := &Server{
		Token: token, IP: "203.0.113.10", ActiveAfter: 1, limit: 5000, remaining: 5000, nextID: 1000,
		droplets: map[int]*Droplet{}, firewalls: map[string]*Firewall{}, tags: map[string]bool{}, keys: map[int]*Key{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + "/"
	t.Cleanup(s.srv.Close)
	return s
}

// Throttle makes the next n requests answer 429 with retryAfter as the
// Retry-After header ("" sends none).
func (s *Server) Throttle(n int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle, s.retryAfter = n, retryAfter
}

// SetRemaining sets the ratelimit-remaining the next response reports.
func (s *Server) SetRemaining(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remaining = n
}

// AddKey puts a key in the account, as if the developer had uploaded it.
func (s *Server) AddKey(name, publicKey string) Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addKey(name, publicKey)
}

// AddDroplet puts a droplet in the account (as if made by an earlier run).
func (s *Server) AddDroplet(d Droplet) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	d.ID = s.nextID
	if d.Status == "" {
		d.Status = "active"
	}
	s.droplets[d.ID] = &d
	return d.ID
}

// Requests returns what the fake received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Violations lists each place the token appeared other than the
// Authorization header, and requests that would make the API email a
// root password. (A wrong token gets a 401, as from the real API.)
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.violations)
}

// Droplets returns the droplets that exist.
func (s *Server) Droplets() []Droplet {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Droplet
	for _, id := range sortedKeys(s.droplets) {
		out = append(out, *s.droplets[id])
	}
	return out
}

// Tags returns the names of the tags that exist, sorted.
func (s *Server) Tags() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedKeys(s.tags)
}

// Firewalls returns the firewalls that exist.
func (s *Server) Firewalls() []Firewall {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Firewall
	for _, id := range sortedKeys(s.firewalls) {
		out = append(out, *s.firewalls[id])
	}
	return out
}

// Keys returns the account's ssh keys.
func (s *Server) Keys() []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Key
	for _, id := range sortedKeys(s.keys) {
		out = append(out, *s.keys[id])
	}
	return out
}

func sortedKeys[K int | string, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (s *Server) addKey(name, publicKey string) Key {
	s.nextID++
	k := Key{ID: s.nextID, Name: name, PublicKey: publicKey, Fingerprint: Fingerprint(publicKey)}
	s.keys[k.ID] = &k
	return k
}

// Fingerprint is the provider's key fingerprint: colon-separated MD5 of
// the key blob.
func Fingerprint(authorized string) string { return cloudfake.Fingerprint(authorized) }

type apiErr struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

var (
	hostname = regexp.MustCompile(`^[a-zA-Z0-9]?[a-z0-9A-Z.\-]*[a-z0-9A-Z]$`)
	tagRule  = regexp.MustCompile(`^[a-zA-Z0-9_\-:]+$`)
	fwName   = regexp.MustCompile(`^[a-zA-Z0-9.\-]{1,255}$`)
)

// Activate makes droplet id active now (with NeverActive, a test decides
// when).
func (s *Server) Activate(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.droplets[id]; ok {
		d.Status = "active"
	}
}

// Stalled is how many creates StallCreate holds now.
func (s *Server) Stalled() int { return int(s.stalled.Load()) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	create := r.Method == http.MethodPost && strings.TrimSuffix(r.URL.Path, "/") == "/v2/droplets"
	if s.StallCreate != nil && create {
		cloudfake.Stall(w, r, s.StallCreate, &s.stalled, func(w http.ResponseWriter) { s.locked(w, r, body) })
		return
	}
	if s.HoldCreate != nil && create {
		cloudfake.Held(w, r, s.HoldCreate, func(w http.ResponseWriter) { s.locked(w, r, body) })
		return
	}
	s.locked(w, r, body)
}

func (s *Server) locked(w http.ResponseWriter, r *http.Request, body []byte) {
	s.mu.Lock()
	defer func() {
		gone := s.deleted
		s.deleted = nil
		s.mu.Unlock()
		for _, d := range gone {
			s.OnDelete(d)
		}
	}()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body, At: time.Now()})
	s.audit(r, body)

	// Every response carries the documented rate-limit headers.
	if s.remaining > 0 {
		s.remaining--
	}
	w.Header().Set("ratelimit-limit", strconv.Itoa(s.limit))
	w.Header().Set("ratelimit-remaining", strconv.Itoa(s.remaining))
	w.Header().Set("ratelimit-reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
	w.Header().Set("x-request-id", fmt.Sprintf("req-%d", len(s.requests)))

	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		s.reply(w, http.StatusUnauthorized, apiErr{"unauthorized", "Unable to authenticate you"})
		return
	}
	if s.throttle > 0 {
		s.throttle--
		if s.retryAfter != "" {
			w.Header().Set("retry-after", s.retryAfter)
		}
		s.reply(w, http.StatusTooManyRequests, apiErr{"too_many_requests", "API Rate limit exceeded."})
		return
	}

	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case r.Method == http.MethodPost && path == "/v2/droplets":
		s.createDroplet(w, body)
	case r.Method == http.MethodGet && path == "/v2/droplets":
		tag := r.URL.Query().Get("tag_name")
		var ds []any
		for _, id := range sortedKeys(s.droplets) {
			d := s.droplets[id]
			if tag == "" || slices.Contains(d.Tags, tag) {
				ds = append(ds, s.dropletJSON(d))
			}
		}
		s.page(w, r, "droplets", ds)
	case strings.HasPrefix(path, "/v2/droplets/"):
		id, _ := strconv.Atoi(strings.TrimPrefix(path, "/v2/droplets/"))
		d, ok := s.droplets[id]
		if !ok {
			s.reply(w, http.StatusNotFound, apiErr{"not_found", "The resource you were accessing could not be found."})
			return
		}
		switch r.Method {
		case http.MethodGet:
			d.reads++
			if d.Status == "new" && !s.NeverActive && d.reads > s.ActiveAfter {
				d.Status = "active"
			}
			s.reply(w, http.StatusOK, map[string]any{"droplet": s.dropletJSON(d)})
		case http.MethodDelete:
			if s.FailDestroy != 0 {
				s.reply(w, s.FailDestroy, apiErr{"server_error", "Server was unable to give you a response."})
				return
			}
			delete(s.droplets, id)
			if s.OnDelete != nil {
				s.deleted = append(s.deleted, *d)
			}
			for _, fw := range s.firewalls {
				fw.DropletIDs = slices.DeleteFunc(fw.DropletIDs, func(x int) bool { return x == id })
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			s.reply(w, http.StatusMethodNotAllowed, apiErr{"method_not_allowed", "method not allowed"})
		}
	case r.Method == http.MethodPost && path == "/v2/firewalls":
		s.createFirewall(w, body)
	case r.Method == http.MethodGet && path == "/v2/firewalls":
		var fs []any
		for _, id := range sortedKeys(s.firewalls) {
			fs = append(fs, s.firewalls[id])
		}
		s.page(w, r, "firewalls", fs)
	case strings.HasPrefix(path, "/v2/firewalls/"):
		id := strings.TrimPrefix(path, "/v2/firewalls/")
		fw, ok := s.firewalls[id]
		if !ok {
			s.reply(w, http.StatusNotFound, apiErr{"not_found", "The resource you were accessing could not be found."})
			return
		}
		switch r.Method {
		case http.MethodPut:
			s.putFirewall(w, fw, body)
		case http.MethodDelete:
			if s.FailFirewallDelete != 0 {
				s.reply(w, s.FailFirewallDelete, apiErr{"server_error", "Server was unable to give you a response."})
				return
			}
			delete(s.firewalls, id)
			w.WriteHeader(http.StatusNoContent)
		default:
			s.reply(w, http.StatusMethodNotAllowed, apiErr{"method_not_allowed", "method not allowed"})
		}
	case r.Method == http.MethodGet && path == "/v2/tags":
		var ts []any
		for _, t := range sortedKeys(s.tags) {
			n := 0
			for _, d := range s.droplets {
				if slices.Contains(d.Tags, t) {
					n++
				}
			}
			ts = append(ts, map[string]any{"name": t, "resources": map[string]any{"count": n, "droplets": map[string]any{"count": n}}})
		}
		s.page(w, r, "tags", ts)
	case r.Method == http.MethodPost && path == "/v2/tags":
		var in struct{ Name string }
		if json.Unmarshal(body, &in) != nil || in.Name == "" || len(in.Name) > 255 || !tagRule.MatchString(in.Name) {
			s.reply(w, http.StatusUnprocessableEntity, apiErr{"unprocessable_entity", "name is invalid"})
			return
		}
		s.tags[in.Name] = true
		s.reply(w, http.StatusCreated, map[string]any{"tag": map[string]any{"name": in.Name, "resources": map[string]any{"count": 0}}})
	case r.Method == http.MethodDelete && strings.HasPrefix(path, "/v2/tags/"):
		// Deleting a tag untags every resource that had it.
		tag := strings.TrimPrefix(path, "/v2/tags/")
		if !s.tags[tag] {
			s.reply(w, http.StatusNotFound, apiErr{"not_found", "The resource you were accessing could not be found."})
			return
		}
		delete(s.tags, tag)
		for _, d := range s.droplets {
			d.Tags = slices.DeleteFunc(d.Tags, func(t string) bool { return t == tag })
		}
		for _, fw := range s.firewalls {
			fw.Tags = slices.DeleteFunc(fw.Tags, func(t string) bool { return t == tag })
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && path == "/v2/account/keys":
		var ks []any
		for _, id := range sortedKeys(s.keys) {
			ks = append(ks, s.keys[id])
		}
		s.page(w, r, "ssh_keys", ks)
	case r.Method == http.MethodPost && path == "/v2/account/keys":
		var in struct{ Name, PublicKey string }
		var raw map[string]string
		if json.Unmarshal(body, &raw) != nil || raw["name"] == "" || raw["public_key"] == "" {
			s.reply(w, http.StatusUnprocessableEntity, apiErr{"unprocessable_entity", "name and public_key are required"})
			return
		}
		in.Name, in.PublicKey = raw["name"], raw["public_key"]
		fp := Fingerprint(in.PublicKey)
		if s.RaceKeyCreate {
			s.addKey("other-laptop", in.PublicKey)
		}
		for _, k := range s.keys {
			if k.Fingerprint == fp {
				s.reply(w, http.StatusUnprocessableEntity, apiErr{"unprocessable_entity", "SSH Key is already in use on your account"})
				return
			}
		}
		k := s.addKey(in.Name, in.PublicKey)
		s.reply(w, http.StatusCreated, map[string]any{"ssh_key": k})
	case strings.HasPrefix(path, "/v2/account/keys/"):
		k := s.findKey(strings.TrimPrefix(path, "/v2/account/keys/"))
		if k == nil {
			s.reply(w, http.StatusNotFound, apiErr{"not_found", "The resource you were accessing could not be found."})
			return
		}
		switch r.Method {
		case http.MethodGet:
			s.reply(w, http.StatusOK, map[string]any{"ssh_key": k})
		case http.MethodPut:
			var raw map[string]string
			_ = json.Unmarshal(body, &raw)
			if raw["name"] != "" {
				k.Name = raw["name"]
			}
			s.reply(w, http.StatusOK, map[string]any{"ssh_key": k})
		case http.MethodDelete:
			delete(s.keys, k.ID)
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		s.reply(w, http.StatusNotFound, apiErr{"not_found", "The resource you were accessing could not be found."})
	}
}

// audit notes where the token appears outside the Authorization header.
func (s *Server) audit(r *http.Request, body []byte) {
	s.violations = append(s.violations, cloudfake.TokenLeaks(r, body, s.Token)...)
}

func (s *Server) findKey(idOrFP string) *Key {
	if id, err := strconv.Atoi(idOrFP); err == nil {
		return s.keys[id]
	}
	for _, k := range s.keys {
		if k.Fingerprint == idOrFP {
			return k
		}
	}
	return nil
}

func (s *Server) createDroplet(w http.ResponseWriter, body []byte) {
	var d Droplet
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		s.reply(w, http.StatusBadRequest, apiErr{"bad_request", "invalid JSON"})
		return
	}
	_ = json.Unmarshal(raw["name"], &d.Name)
	_ = json.Unmarshal(raw["region"], &d.Region)
	_ = json.Unmarshal(raw["size"], &d.Size)
	_ = json.Unmarshal(raw["image"], &d.Image)
	_ = json.Unmarshal(raw["ssh_keys"], &d.SSHKeys)
	_ = json.Unmarshal(raw["user_data"], &d.UserData)
	_ = json.Unmarshal(raw["tags"], &d.Tags)
	switch {
	case d.Name == "" || len(d.Name) > 255 || !hostname.MatchString(d.Name):
		s.reply(w, http.StatusUnprocessableEntity, apiErr{"unprocessable_entity", "Name is invalid"})
		return
	case d.Size == "" || d.Size == "no-such-size":
		s.reply(w, http.StatusUnprocessableEntity, apiErr{"unprocessable_entity", "Size is not available in this region."})
		return
	case d.Image == "":
		s.reply(w, http.StatusUnprocessableEntity, apiErr{"unprocessable_entity", "You specified an invalid image for Droplet creation."})
		return
	case d.Region == "nowhere1":
		s.reply(w, http.StatusUnprocessableEntity, apiErr{"unprocessable_entity", "Region is not available"})
		return
	case len(d.UserData) > 64<<10:
		s.reply(w, http.StatusUnprocessableEntity, apiErr{"unprocessable_entity", "user_data is too long"})
		return
	case len(d.SSHKeys) == 0:
		// The API takes it, but emails a root password: spuff must not.
		s.violations = append(s.violations, "POST /v2/droplets: no ssh_keys (DigitalOcean would email a root password)")
	}
	for _, t := range d.Tags {
		if !tagRule.MatchString(t) || len(t) > 255 {
			s.reply(w, http.StatusUnprocessableEntity, apiErr{"unprocessable_entity", "tag " + t + " is invalid"})
			return
		}
	}
	for _, k := range d.SSHKeys {
		if !s.keyExists(k) {
			s.reply(w, http.StatusUnprocessableEntity, apiErr{"unprocessable_entity", "ssh_keys: key not found"})
			return
		}
	}
	if !s.covered(d.Tags) {
		s.violations = append(s.violations, "POST /v2/droplets: no firewall covers the droplet's tags, so its sshd faces the internet until one is applied")
	}
	for _, t := range d.Tags {
		s.tags[t] = true // a droplet's tags may be new ones
	}
	s.nextID++
	d.ID = s.nextID
	d.Status = "new"
	s.droplets[d.ID] = &d
	s.reply(w, http.StatusAccepted, map[string]any{
		"droplet": s.dropletJSON(&d),
		"links":   map[string]any{"actions": []any{map[string]any{"id": d.ID + 1, "rel": "create", "href": s.srv.URL + "/v2/actions/" + strconv.Itoa(d.ID+1)}}},
	})
}

func (s *Server) keyExists(k any) bool {
	switch v := k.(type) {
	case float64:
		_, ok := s.keys[int(v)]
		return ok
	case string:
		return s.findKey(v) != nil
	}
	return false
}

func (s *Server) createFirewall(w http.ResponseWriter, body []byte) {
	if s.FailFirewall != 0 {
		s.reply(w, s.FailFirewall, apiErr{"unprocessable_entity", "Firewall limit exceeded"})
		return
	}
	fw, ok := s.firewallIn(w, body)
	if !ok {
		return
	}
	s.nextID++
	fw.ID = fmt.Sprintf("fb6045f1-cf1d-4ca3-bfac-%012d", s.nextID)
	s.firewalls[fw.ID] = &fw
	s.reply(w, http.StatusAccepted, map[string]any{"firewall": firewallJSON(&fw)})
}

// putFirewall is PUT /v2/firewalls/ID, which takes the whole firewall:
// what the request leaves out is reset, as the API documents.
func (s *Server) putFirewall(w http.ResponseWriter, fw *Firewall, body []byte) {
	in, ok := s.firewallIn(w, body)
	if !ok {
		return
	}
	in.ID = fw.ID
	*fw = in
	s.reply(w, http.StatusOK, map[string]any{"firewall": firewallJSON(fw)})
}

// firewallIn decodes and checks a firewall sent in body, answering the
// API's refusal itself when it is not one to take.
func (s *Server) firewallIn(w http.ResponseWriter, body []byte) (Firewall, bool) {
	var fw Firewall
	if err := json.Unmarshal(body, &fw); err != nil {
		s.reply(w, http.StatusBadRequest, apiErr{"bad_request", "invalid JSON"})
		return fw, false
	}
	if msg := s.checkFirewall(&fw); msg != "" {
		s.reply(w, http.StatusUnprocessableEntity, apiErr{"unprocessable_entity", msg})
		return fw, false
	}
	return fw, true
}

// checkFirewall is what the API refuses in a firewall: a bad name, a
// droplet that does not exist, or a tag not made before (the API takes
// only existing tag names here).
func (s *Server) checkFirewall(fw *Firewall) string {
	if !fwName.MatchString(fw.Name) {
		return "name is invalid"
	}
	for _, id := range fw.DropletIDs {
		if _, ok := s.droplets[id]; !ok {
			return "droplet not found"
		}
	}
	for _, t := range fw.Tags {
		if !s.tags[t] {
			return "tag " + t + " not found"
		}
	}
	return ""
}

// covered says whether a firewall applies to a droplet made with tags.
func (s *Server) covered(tags []string) bool {
	for _, fw := range s.firewalls {
		for _, t := range fw.Tags {
			if slices.Contains(tags, t) {
				return true
			}
		}
	}
	return false
}

func firewallJSON(fw *Firewall) map[string]any {
	return map[string]any{
		"id": fw.ID, "name": fw.Name, "status": "waiting", "inbound_rules": fw.InboundRules,
		"outbound_rules": fw.OutboundRules, "droplet_ids": fw.DropletIDs, "tags": fw.Tags,
		"created_at": time.Now().UTC().Format(time.RFC3339), "pending_changes": []any{},
	}
}

func (s *Server) dropletJSON(d *Droplet) map[string]any {
	v4 := []any{}
	if d.Status == "active" {
		v4 = append(v4,
			map[string]any{"ip_address": "10.110.0.2", "netmask": "255.255.240.0", "gateway": "10.110.0.1", "type": "private"},
			map[string]any{"ip_address": s.IP, "netmask": "255.255.240.0", "gateway": "203.0.113.1", "type": "public"})
	}
	tags := d.Tags
	if tags == nil {
		tags = []string{}
	}
	return map[string]any{
		"id": d.ID, "name": d.Name, "memory": 4096, "vcpus": 2, "disk": 80, "locked": false,
		"status": d.Status, "created_at": "2026-12-01T10:00:00Z", "features": []string{},
		"image":     map[string]any{"slug": d.Image, "distribution": "Debian"},
		"size":      map[string]any{"slug": d.Size},
		"size_slug": d.Size,
		"networks":  map[string]any{"v4": v4, "v6": []any{}},
		"region":    map[string]any{"slug": d.Region, "name": d.Region, "available": true},
		"tags":      tags,
	}
}

// page replies with one page of items, shaped like DigitalOcean's lists:
// {key: [...], links: {pages: {first, prev, next, last}}, meta: {total}}.
func (s *Server) page(w http.ResponseWriter, r *http.Request, key string, items []any) {
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if page < 1 {
		page = 1
	}
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per < 1 {
		per = 20
	}
	if per > 200 {
		per = 200
	}
	if s.PerPageCap > 0 && per > s.PerPageCap {
		per = s.PerPageCap
	}
	total := len(items)
	last := max(1, (total+per-1)/per)
	lo := min((page-1)*per, total)
	hi := min(lo+per, total)
	if items == nil {
		items = []any{}
	}
	link := func(p int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(per))
		return s.srv.URL + r.URL.Path + "?" + q.Encode()
	}
	pages := map[string]string{}
	if page > 1 {
		pages["first"], pages["prev"] = link(1), link(page-1)
	}
	if page < last {
		pages["next"], pages["last"] = link(page+1), link(last)
	}
	s.reply(w, http.StatusOK, map[string]any{key: items[lo:hi], "links": map[string]any{"pages": pages}, "meta": map[string]any{"total": total}})
}

func (s *Server) reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
