package cloudapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Transport sends a provider's API requests: it puts the token in the
// Authorization header (its only place), waits out an exhausted rate limit
// before sending, and retries a bounded number of times — a 429 for any
// method (the provider did nothing), a 5xx or a network error only for
// methods that are safe to repeat, so a create is never sent twice.
type Transport struct {
	// Base sends the requests; nil is http.DefaultTransport with a bound
	// on the wait for a response's headers.
	Base http.RoundTripper
	// Token is sent as "Authorization: Bearer <Token>".
	Token string
	// Provider names the API in logs ("digitalocean").
	Provider string
	Logger   *slog.Logger
	// MaxRetries bounds the retries of one request (default 4).
	MaxRetries int
	// MaxWait is the longest a rate limit is waited out; a longer one is
	// handed back as the provider's 429 (default 60s).
	MaxWait time.Duration

	mu        sync.Mutex
	remaining int // from RateLimit-Remaining; -1 unknown
	reset     time.Time
}

// NewTransport returns a Transport for provider sending with base.
func NewTransport(provider, token string, base http.RoundTripper, log *slog.Logger) *Transport {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Transport{Base: base, Token: token, Provider: provider, Logger: log, remaining: -1}
}

// defaultBase gives up on an attempt whose headers do not come within a
// minute, so a hung connection is retried (or reported), not waited on.
var defaultBase http.RoundTripper = func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = time.Minute
	return t
}()

const (
	defaultRetries = 4
	defaultMaxWait = 60 * time.Second
	backoffBase    = 500 * time.Millisecond
	backoffCap     = 10 * time.Second
)

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	retries := t.MaxRetries
	if retries <= 0 {
		retries = defaultRetries
	}
	maxWait := t.MaxWait
	if maxWait <= 0 {
		maxWait = defaultMaxWait
	}
	base := t.Base
	if base == nil {
		base = defaultBase
	}
	for attempt := 0; ; attempt++ {
		if err := t.waitLimit(ctx, maxWait); err != nil {
			return nil, err
		}
		r, err := t.prepare(req, attempt)
		if err != nil {
			return nil, err
		}
		resp, err := base.RoundTrip(r)
		last := attempt >= retries
		if err != nil {
			if last || !idempotent(req.Method) || ctx.Err() != nil {
				return nil, err
			}
			t.log(req, "network error; retrying", "error", err)
			if err := Sleep(ctx, backoff(attempt)); err != nil {
				return nil, err
			}
			continue
		}
		t.noteLimit(resp.Header, time.Now())
		wait, retry := t.retryAfter(req.Method, resp, attempt, time.Now())
		if !retry || last || wait > maxWait {
			return resp, nil
		}
		t.log(req, "retrying", "status", resp.StatusCode, "wait", wait.String())
		drain(resp)
		if err := Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// prepare returns the attempt's request: a clone carrying the token, with
// a fresh body for a retry.
func (t *Transport) prepare(req *http.Request, attempt int) (*http.Request, error) {
	r := req.Clone(req.Context())
	if attempt > 0 && req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return nil, fmt.Errorf("cloudapi: %s %s cannot be retried (its body cannot be read again)", req.Method, req.URL.Path)
		}
		b, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("cloudapi: %s %s: %w", req.Method, req.URL.Path, err)
		}
		r.Body = b
	}
	if t.Token != "" {
		r.Header.Set("Authorization", "Bearer "+t.Token)
	}
	return r, nil
}

// retryAfter says whether resp is worth retrying and after how long.
func (t *Transport) retryAfter(method string, resp *http.Response, attempt int, now time.Time) (time.Duration, bool) {
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			return d, true
		}
		if r, ok := ParseReset(resp.Header.Get("RateLimit-Reset")); ok && r.After(now) {
			return r.Sub(now), true
		}
		return backoff(attempt), true
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented && idempotent(method):
		if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			return d, true
		}
		return backoff(attempt), true
	}
	return 0, false
}

// noteLimit keeps the newest rate-limit headers.
func (t *Transport) noteLimit(h http.Header, now time.Time) {
	rem, err := strconv.Atoi(strings.TrimSpace(h.Get("RateLimit-Remaining")))
	if err != nil {
		return
	}
	reset, ok := ParseReset(h.Get("RateLimit-Reset"))
	t.mu.Lock()
	defer t.mu.Unlock()
	t.remaining = rem
	if ok {
		t.reset = reset
	} else {
		t.reset = now.Add(time.Minute)
	}
}

// waitLimit waits for the reset when the last response said no request
// is left, rather than spending one on a sure 429.
func (t *Transport) waitLimit(ctx context.Context, maxWait time.Duration) error {
	t.mu.Lock()
	rem, reset := t.remaining, t.reset
	t.mu.Unlock()
	if rem != 0 {
		return nil
	}
	d := time.Until(reset)
	if d <= 0 {
		return nil
	}
	if d > maxWait {
		return fmt.Errorf("cloudapi: the %s API rate limit is spent until %s; try again then", t.Provider, reset.UTC().Format(time.RFC3339))
	}
	t.Logger.Info("waiting for the API rate limit to reset", "provider", t.Provider, "wait", d.Round(time.Millisecond).String())
	if err := Sleep(ctx, d); err != nil {
		return err
	}
	t.mu.Lock()
	if t.remaining == 0 {
		t.remaining = -1
	}
	t.mu.Unlock()
	return nil
}

func (t *Transport) log(req *http.Request, msg string, args ...any) {
	// Method and path only: the query may hold a tag, never the token,
	// but headers do.
	t.Logger.Info(t.Provider+" API: "+msg, append([]any{"method", req.Method, "path", req.URL.Path}, args...)...)
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date (RFC 9110 §10.2.3). A date in the past is no wait.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > int64(24*time.Hour/time.Second) {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := at.Sub(now)
	if d < 0 {
		d = 0
	}
	if d > 24*time.Hour {
		return 0, false
	}
	return d, true
}

// ParseReset reads a RateLimit-Reset header, which both clouds send as a
// Unix time in seconds.
func ParseReset(v string) (time.Time, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 || n > 1<<40 {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodPut, http.MethodOptions:
		return true
	}
	return false
}

func backoff(attempt int) time.Duration {
	d := backoffBase << min(attempt, 8)
	return min(d, backoffCap)
}

// Sleep waits d, or less if ctx ends first (then it returns ctx.Err()).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// ClientTimeout bounds one API call with its retries and waits: the
// Transport's retries of at most MaxWait each fit inside it.
const ClientTimeout = 5 * time.Minute
