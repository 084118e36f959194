package control

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/spuff-dev/spuff/app/control/api"
)

// Approvals is what the approval routes need of the approver. Decide and
// Revoke return api.ErrUnknown for an id they do not know.
type Approvals interface {
	Pending() []api.PendingItem
	Decide(id string, allow bool, via string) error
	Grants() []api.Grant
	Revoke(id string) error
	Lock() int
}

func (s *Server) approvalRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/pending", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Approvals.Pending())
	})
	decide := func(allow bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			via := r.URL.Query().Get("via")
			if via != api.ViaTray {
				via = api.ViaCLI
			}
			if err := s.Approvals.Decide(r.PathValue("id"), allow, via); err != nil {
				code := http.StatusConflict
				if errors.Is(err, api.ErrUnknown) {
					code = http.StatusNotFound
				}
				writeErr(w, code, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}
	}
	mux.HandleFunc("POST /v1/pending/{id}/approve", decide(true))
	mux.HandleFunc("POST /v1/pending/{id}/deny", decide(false))
	mux.HandleFunc("GET /v1/approvals", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Approvals.Grants())
	})
	mux.HandleFunc("DELETE /v1/approvals/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Approvals.Revoke(r.PathValue("id")); err != nil {
			writeErr(w, http.StatusNotFound, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/lock", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.LockResult{Revoked: s.Approvals.Lock()})
	})
}

// Pending lists open approval prompts.
func (c *Client) Pending(ctx context.Context) ([]api.PendingItem, error) {
	var out []api.PendingItem
	return out, c.do(ctx, http.MethodGet, "/v1/pending", nil, &out)
}

// Decide approves or denies a pending prompt; via is cli or tray.
func (c *Client) Decide(ctx context.Context, id string, allow bool, via string) error {
	verb := "deny"
	if allow {
		verb = "approve"
	}
	return c.do(ctx, http.MethodPost, "/v1/pending/"+url.PathEscape(id)+"/"+verb+"?via="+url.QueryEscape(via), nil, nil)
}

// Grants lists live approval grants.
func (c *Client) Grants(ctx context.Context) ([]api.Grant, error) {
	var out []api.Grant
	return out, c.do(ctx, http.MethodGet, "/v1/approvals", nil, &out)
}

// Revoke drops one grant.
func (c *Client) Revoke(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/approvals/"+url.PathEscape(id), nil, nil)
}

// Lock revokes every grant and denies everything pending.
func (c *Client) Lock(ctx context.Context) (int, error) {
	var out api.LockResult
	return out.Revoked, c.do(ctx, http.MethodPost, "/v1/lock", nil, &out)
}
