package awsendpoint_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/guest/awsendpoint"
)

// FuzzHandler feeds the endpoint what any process in the shed can send: a
// method, a path and an Authorization header. Only GET /credentials with
// the token may reach the host and get credentials.
func FuzzHandler(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/credentials", token},
		{"GET", "/credentials", ""},
		{"GET", "/credentials", "Bearer " + token},
		{"GET", "/credentials/", token},
		{"GET", "//credentials", token},
		{"POST", "/credentials", token},
		{"get", "/credentials", token},
		{"GET", "/credentials%00", token},
		{"GET", "/../credentials", token},
		{"GET", "/credentials", token + "\x00"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, method, path, auth string) {
		h := &hostStub{}
		req := &http.Request{Method: method, URL: &url.URL{Path: path}, Header: http.Header{}}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		awsendpoint.NewHandler(h, token, nil).ServeHTTP(rec, req)
		allowed := method == "GET" && path == "/credentials" && auth == token
		if got := rec.Code == http.StatusOK; got != allowed {
			t.Fatalf("%q %q auth-ok=%t: status %d", method, path, auth == token, rec.Code)
		}
		if !allowed && (h.count() != 0 || strings.Contains(rec.Body.String(), "session-secret")) {
			t.Fatalf("%q %q reached the host or got credentials", method, path)
		}
	})
}
