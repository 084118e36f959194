// Package awssts mints the short-lived AWS credentials sheds get: it assumes
// the role the host's config names for a shed, with credentials from the
// host's source profile, and caches each session per shed and role until
// shortly before it expires. The guest never chooses the role.
package awssts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"golang.org/x/sync/singleflight"

	"github.com/spuff-dev/spuff/app/config"
)

// Defaults applied when the config leaves a duration unset.
const (
	DefaultSessionDuration = time.Hour
	// DefaultCacheRefreshBefore is botocore's advisory window: it asks a
	// container endpoint again once its credentials have less than 15
	// minutes left, so the host must not serve ones that old.
	DefaultCacheRefreshBefore = 15 * time.Minute
	// assumeTimeout bounds one AssumeRole (with loading the source profile,
	// which may run a credential_process or an SSO refresh).
	assumeTimeout = 30 * time.Second
)

// Options configure a Service. The zero value is the product's behaviour.
type Options struct {
	Log *slog.Logger
	// Now is the clock sessions are judged by; time.Now when nil.
	Now func() time.Time
	// LoadOptions are added to those the source profile is loaded with
	// (tests point them at a scratch ~/.aws).
	LoadOptions []func(*awsconfig.LoadOptions) error
}

// Service hands out credentials per shed: the aws-credentials namespace's
// host side and a factory of per-shed aws.CredentialsProviders.
type Service struct {
	log  *slog.Logger
	now  func() time.Time
	load []func(*awsconfig.LoadOptions) error

	mu       sync.Mutex
	sessions map[string]map[string]*session // shed → params key → session
	flight   singleflight.Group

	assumeCalls  atomic.Int64
	assumeErrors atomic.Int64
	hits         atomic.Int64
	misses       atomic.Int64
}

// session is one cached AssumeRole result.
type session struct {
	creds aws.Credentials
	role  string
}

// Stats are the service's counters, shown by `spuff status --json`.
type Stats struct {
	AssumeRoleCalls  int64 `json:"assume_role_calls"`  // AssumeRole requests sent to STS
	AssumeRoleErrors int64 `json:"assume_role_errors"` // of which failed
	CacheHits        int64 `json:"cache_hits"`         // retrievals answered from the cache
	CacheMisses      int64 `json:"cache_misses"`       // retrievals that waited for an AssumeRole
	Sessions         int   `json:"sessions"`           // sessions held now
}

// New returns a Service with an empty cache.
func New(opts Options) *Service {
	s := &Service{
		log:      opts.Log,
		now:      opts.Now,
		load:     opts.LoadOptions,
		sessions: make(map[string]map[string]*session),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Stats returns the counters so far.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	n := 0
	for _, m := range s.sessions {
		n += len(m)
	}
	s.mu.Unlock()
	return Stats{
		AssumeRoleCalls:  s.assumeCalls.Load(),
		AssumeRoleErrors: s.assumeErrors.Load(),
		CacheHits:        s.hits.Load(),
		CacheMisses:      s.misses.Load(),
		Sessions:         n,
	}
}

// Forget drops the sessions of shed (it was detached); the next request
// assumes the role afresh.
func (s *Service) Forget(shed string) {
	s.mu.Lock()
	delete(s.sessions, shed)
	s.mu.Unlock()
}

// params is everything an AssumeRole for one shed depends on. Two requests
// with equal params share a session; a config change makes a new one.
type params struct {
	Shed          string        `json:"shed"`
	Role          string        `json:"role"`
	SessionPolicy string        `json:"session_policy,omitempty"`
	ExternalID    string        `json:"external_id,omitempty"`
	Region        string        `json:"region,omitempty"`
	Endpoint      string        `json:"sts_endpoint,omitempty"`
	SourceProfile string        `json:"source_profile,omitempty"`
	Duration      time.Duration `json:"duration"`
	RefreshBefore time.Duration `json:"-"`
	SessionTags   bool          `json:"session_tags,omitempty"`
}

func paramsOf(c *config.Shed) params {
	p := params{
		Shed:          c.Name,
		Role:          c.Role,
		SessionPolicy: c.SessionPolicy,
		ExternalID:    c.AWS.ExternalID,
		Region:        c.AWS.Region,
		Endpoint:      c.AWS.STSEndpoint,
		SourceProfile: c.AWS.SourceProfile,
		Duration:      c.AWS.SessionDuration,
		RefreshBefore: c.AWS.CacheRefreshBefore,
		SessionTags:   c.AWS.SessionTags,
	}
	if p.Duration <= 0 {
		p.Duration = DefaultSessionDuration
	}
	if p.RefreshBefore <= 0 {
		p.RefreshBefore = DefaultCacheRefreshBefore
	}
	// A window as long as the session would make every request a miss.
	if p.RefreshBefore >= p.Duration {
		p.RefreshBefore = p.Duration / 2
	}
	return p
}

// key names the cache slot of p within its shed.
func (p params) key() string {
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// cached returns the shed's session for key if it is still fresh.
func (s *Service) cached(p params, key string) (aws.Credentials, bool) {
	s.mu.Lock()
	sess := s.sessions[p.Shed][key]
	s.mu.Unlock()
	if sess == nil || !s.fresh(sess.creds, p.RefreshBefore) {
		return aws.Credentials{}, false
	}
	return sess.creds, true
}

func (s *Service) fresh(c aws.Credentials, refreshBefore time.Duration) bool {
	return !c.CanExpire || c.Expires.Sub(s.now()) > refreshBefore
}

func (s *Service) store(p params, key string, c aws.Credentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.sessions[p.Shed]
	if m == nil {
		m = make(map[string]*session)
		s.sessions[p.Shed] = m
	}
	// Sessions of an older config of this shed will not be asked for again.
	for k, old := range m {
		if k != key && !s.fresh(old.creds, 0) {
			delete(m, k)
		}
	}
	m[key] = &session{creds: c, role: p.Role}
}

// retrieve answers from the cache or joins the one AssumeRole in flight for
// this shed and params. The AssumeRole runs on its own deadline so that a
// caller who gives up does not fail the others waiting for it.
func (s *Service) retrieve(ctx context.Context, p params) (aws.Credentials, error) {
	key := p.key()
	if c, ok := s.cached(p, key); ok {
		s.hits.Add(1)
		return c, nil
	}
	s.misses.Add(1)
	ch := s.flight.DoChan(p.Shed+"/"+key, func() (any, error) {
		// A caller that lost the race to an AssumeRole just finished finds it here.
		if c, ok := s.cached(p, key); ok {
			return c, nil
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), assumeTimeout)
		defer cancel()
		c, err := s.assumeRole(actx, p)
		if err != nil {
			return nil, err
		}
		s.store(p, key, c)
		return c, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return aws.Credentials{}, r.Err
		}
		return r.Val.(aws.Credentials), nil
	case <-ctx.Done():
		return aws.Credentials{}, ctx.Err()
	}
}
