package cloudapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// A 5xx is retried for a GET and never for a POST, which the API may have
// acted on; every attempt carries the token in the Authorization header.
func TestTransportRetriesOnlyWhatIsSafe(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			t.Errorf("attempt %d without the token", n.Load())
		}
		if n.Add(1) == 1 || r.Method == http.MethodPost {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	c := &http.Client{Transport: NewTransport("test", "tok", nil, nil)}

	resp, err := c.Get(srv.URL)
	if err != nil || resp.StatusCode != 200 || n.Load() != 2 {
		t.Fatalf("GET = %v, %v after %d attempts; want 200 after 2", resp, err, n.Load())
	}
	resp.Body.Close()

	n.Store(0)
	resp, err = c.Post(srv.URL, "application/json", strings.NewReader(`{"name":"x"}`))
	if err != nil || resp.StatusCode != 503 || n.Load() != 1 {
		t.Fatalf("POST = %v, %v after %d attempts; want the 503 after 1", resp, err, n.Load())
	}
	resp.Body.Close()
}

// A 429 is retried for a POST too (the API did nothing), with its body.
func TestTransportRetriesA429WithItsBody(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 64)
		k, _ := r.Body.Read(b)
		if string(b[:k]) != `{"name":"x"}` {
			t.Errorf("attempt %d body %q", n.Load()+1, b[:k])
		}
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	c := &http.Client{Transport: NewTransport("test", "tok", nil, nil)}
	resp, err := c.Post(srv.URL, "application/json", strings.NewReader(`{"name":"x"}`))
	if err != nil || resp.StatusCode != 201 || n.Load() != 2 {
		t.Fatalf("POST = %v, %v after %d attempts", resp, err, n.Load())
	}
	resp.Body.Close()
}
