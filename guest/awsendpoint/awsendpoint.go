// Package awsendpoint is the shed's AWS container-credentials endpoint: the
// URL every AWS SDK and the AWS CLI read through
// AWS_CONTAINER_CREDENTIALS_FULL_URI. It binds loopback only, wants the
// token in AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) on every request, and
// answers each GET /credentials by asking the host, which picks the role;
// nothing is cached in the shed.
package awsendpoint

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
)

// Path is the only route served.
const Path = "/credentials"

// Caller is how the endpoint reaches the host (the guest daemon).
type Caller interface {
	Call(ctx context.Context, ns, op string, payload, out any) error
}

// URL is the AWS_CONTAINER_CREDENTIALS_FULL_URI of an endpoint on addr.
func URL(addr string) string { return "http://" + addr + Path }

// credentials is the SDKs' container-credentials body.
type credentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      string `json:"Expiration"`
}

// problem is an error body. The Go SDK reads code and message; botocore and
// the CLI print the body as it is, so message and hint are whole sentences.
type problem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Hint    string `json:"hint"`
}

type handler struct {
	c     Caller
	token []byte
	log   *slog.Logger
}

// NewHandler serves GET /credentials for requests whose Authorization
// header is token. An empty token refuses every request: the endpoint is
// never open.
func NewHandler(c Caller, token string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if token == "" {
		log.Error("awsendpoint: no token; refusing every request")
	}
	return &handler{c: c, token: []byte(token), log: log}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		writeJSON(w, http.StatusNotFound, problem{Code: "NOT_FOUND", Message: "the spuff AWS endpoint serves only GET " + Path, Hint: "point AWS_CONTAINER_CREDENTIALS_FULL_URI at " + Path})
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeJSON(w, http.StatusMethodNotAllowed, problem{Code: "METHOD_NOT_ALLOWED", Message: "the spuff AWS endpoint serves only GET " + Path, Hint: "credentials are read, never written, here"})
		return
	}
	got := []byte(r.Header.Get("Authorization"))
	if len(h.token) == 0 || subtle.ConstantTimeCompare(got, h.token) != 1 {
		writeJSON(w, http.StatusUnauthorized, problem{Code: "UNAUTHORIZED", Message: "missing or wrong authorization token", Hint: "set AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE to the spuff run dir's aws-token (or AWS_CONTAINER_AUTHORIZATION_TOKEN to its content)"})
		return
	}
	var out bus.AWSCredentials
	// The request carries no role: the host chooses it.
	if err := h.c.Call(r.Context(), bus.NSAWS, bus.OpGetCredentials, nil, &out); err != nil {
		status, p := failure(err)
		h.log.Warn("awsendpoint: credentials request failed", "code", p.Code, "message", p.Message)
		writeJSON(w, status, p)
		return
	}
	if out.AccessKeyID == "" || out.SecretAccessKey == "" {
		h.log.Warn("awsendpoint: the host answered without credentials")
		writeJSON(w, http.StatusServiceUnavailable, problem{Code: bus.CodeInternal, Message: "the host answered without credentials", Hint: hint(bus.CodeInternal)})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, credentials{
		AccessKeyID:     out.AccessKeyID,
		SecretAccessKey: out.SecretAccessKey,
		Token:           out.SessionToken,
		Expiration:      out.Expiration.UTC().Format(time.RFC3339),
	})
}

// failure maps a host error to a status: refusals are 403 (an SDK does not
// retry them), being throttled 429, anything else 503.
func failure(err error) (int, problem) {
	var be *bus.Error
	if !errors.As(err, &be) {
		be = bus.Unreachable(err)
	}
	p := problem{Code: be.Code, Message: be.Message, Hint: hint(be.Code)}
	switch be.Code {
	case bus.CodeNotAllowed, bus.CodeDenied:
		return http.StatusForbidden, p
	case bus.CodeRateLimited:
		return http.StatusTooManyRequests, p
	default:
		return http.StatusServiceUnavailable, p
	}
}

func hint(code string) string {
	switch code {
	case bus.CodeHostUnreachable:
		return "this shed gets AWS credentials only from spuff on your computer; check `spuff list` there shows it connected"
	case bus.CodeNotAllowed:
		return "the AWS role of a shed is chosen on your computer, in ~/.spuff/config.yaml (sheds.NAME.aws.role, aws.default_role, sheds.NAME.namespaces)"
	case bus.CodeDenied:
		return "the request was denied on your computer; retry and approve it there"
	case bus.CodeApprovalTimeout:
		return "nobody approved the request on your computer in time; retry and approve it there"
	case bus.CodeUpstream:
		return "fix the AssumeRole on your computer and retry; `spuff audit --ns aws-credentials` there shows each attempt"
	case bus.CodeRateLimited:
		return "this shed asks too often; the SDK retries on its own"
	default:
		return "`spuff audit --ns aws-credentials` on your computer shows what happened"
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// NewToken returns a fresh endpoint token: 32 random bytes, base64url
// without padding (no newline, as the SDKs require).
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("awsendpoint: generating token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// KeepToken returns the token already at path when it is one this daemon
// wrote (a regular file of the caller's, writable by nobody else, holding a
// token in NewToken's form), else a fresh one. A restarted spuff-guest keeps
// its token, so a login shell's exported AWS_CONTAINER_AUTHORIZATION_TOKEN
// (all older SDKs read) stays valid; the run dir lives until reboot, when
// every login session ends too.
func KeepToken(path string) (string, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o022 == 0 && ownedByMe(fi) {
		if b, err := os.ReadFile(path); err == nil && tokenForm.Match(b) {
			return string(b), nil
		}
	}
	return NewToken()
}

// tokenForm is what NewToken makes: 32 bytes, base64url, no padding.
var tokenForm = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

func ownedByMe(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// WriteToken writes token to path: mode 0600, or 0640 owned by group gid
// when gid >= 0 (the --socket-group, so its processes can read it). The
// file is replaced whole, never seen half written or with a looser mode.
func WriteToken(path, token string, gid int) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".aws-token-*")
	if err != nil {
		return fmt.Errorf("awsendpoint: writing token: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("awsendpoint: writing token %s: %w", path, err)
	}
	// CreateTemp makes it 0600; widen only after the group is set.
	if gid >= 0 {
		if err := f.Chown(-1, gid); err != nil {
			return fail(err)
		}
		if err := f.Chmod(0o640); err != nil {
			return fail(err)
		}
	}
	if _, err := f.WriteString(token); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("awsendpoint: writing token %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("awsendpoint: writing token %s: %w", path, err)
	}
	return nil
}

// Listen binds addr, which must be a loopback IP address or localhost:
// anything in the shed may reach the endpoint, nothing outside it.
func Listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("awsendpoint: address %q: %w", addr, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("awsendpoint: %q is not a loopback address; the AWS endpoint binds 127.0.0.1 only", addr)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("awsendpoint: %w", err)
	}
	return l, nil
}

// Serve runs h on l until ctx ends, then closes l and waits briefly for
// requests in flight.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	shut := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(shut)
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	err := srv.Serve(l)
	if stop() {
		// Serve failed on its own; ctx has not ended.
		return fmt.Errorf("awsendpoint: serving: %w", err)
	}
	<-shut
	return nil
}
