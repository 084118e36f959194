// Package cloudfake is what the fake cloud APIs (dofake, hcloudfake) and
// their tests share: the providers' MD5 key fingerprint, the check that
// the token travels only in the Authorization header, and a random token
// and login key per test so a grep for the token means something.
package cloudfake

import (
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Fingerprint is the colon-separated MD5 of an authorized_keys line's key
// blob, as both clouds name a key; "" if the line holds no key.
func Fingerprint(authorized string) string {
	f := strings.Fields(authorized)
	if len(f) < 2 {
		return ""
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return ""
	}
	sum := md5.Sum(blob)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02x", b)
	}
	return strings.Join(parts, ":")
}

// TokenLeaks lists each place in r (with its body) where token appears
// other than the Authorization header.
func TokenLeaks(r *http.Request, body []byte, token string) []string {
	if token == "" {
		return nil
	}
	where := r.Method + " " + r.URL.Path + ": token in "
	var out []string
	if strings.Contains(r.URL.String(), token) {
		out = append(out, where+"the URL")
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			if k != "Authorization" && strings.Contains(v, token) {
				out = append(out, where+"header "+k)
			}
		}
	}
	if strings.Contains(string(body), token) {
		out = append(out, where+"the body")
	}
	return out
}

// Token returns a random token with prefix, new for each test.
func Token(t testing.TB, prefix string) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// LoginKey returns a fresh ed25519 public key in authorized_keys form.
func LoginKey(t testing.TB) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " alice@laptop"
}

// Held runs serve on a recorder and sends its answer only once hold is
// closed: a create the cloud carried out whose response is late, as when
// spuff-app is killed between the create and its state update. A client
// gone before then gets nothing, and what serve made stays, as at the
// cloud.
func Held(w http.ResponseWriter, r *http.Request, hold <-chan struct{}, serve func(http.ResponseWriter)) {
	rec := httptest.NewRecorder()
	serve(rec)
	select {
	case <-hold:
	case <-r.Context().Done():
		return
	}
	maps.Copy(w.Header(), rec.Header())
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// Stall holds a request before serve sees it, until hold is closed: a
// create the cloud has not carried out yet, as when the host loses power
// while the request is in flight. held counts the requests held now. A
// client gone before hold is closed gets nothing, and nothing is made.
func Stall(w http.ResponseWriter, r *http.Request, hold <-chan struct{}, held *atomic.Int32, serve func(http.ResponseWriter)) {
	held.Add(1)
	defer held.Add(-1)
	select {
	case <-hold:
		serve(w)
	case <-r.Context().Done():
	}
}
