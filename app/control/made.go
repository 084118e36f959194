package control

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/spuff-dev/spuff/app/control/api"
)

// Provisioner is what the control API needs of the sheds spuff makes
// (spuff-app's provisioning Manager, which alone holds provider tokens).
// Its steps reach clients as EventProvision on /v1/events.
type Provisioner interface {
	Up(ctx context.Context, req api.UpRequest) (api.MadeShed, error)
	Down(ctx context.Context, name string, force bool) error
	Start(ctx context.Context, name string) (api.MadeShed, error)
	Stop(ctx context.Context, name string) error
	List(ctx context.Context) (api.MadeList, error)
	// Rows lists made sheds as state.db holds them, listing no provider's
	// machines: what a command that needs one shed's address reads.
	Rows(ctx context.Context) (api.MadeList, error)
}

func (s *Server) madeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/made", func(w http.ResponseWriter, r *http.Request) {
		list := s.Provisioner.List
		if r.URL.Query().Get("reconcile") == "false" {
			list = s.Provisioner.Rows
		}
		l, err := list(r.Context())
		if err != nil {
			writeErr(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, l)
	})
	mux.HandleFunc("POST /v1/up", func(w http.ResponseWriter, r *http.Request) {
		var req api.UpRequest
		if decodeBody(w, r, &req) {
			writeMade(w, http.StatusCreated)(s.Provisioner.Up(r.Context(), req))
		}
	})
	mux.HandleFunc("POST /v1/start", func(w http.ResponseWriter, r *http.Request) {
		var req api.ShedRequest
		if decodeBody(w, r, &req) {
			writeMade(w, http.StatusOK)(s.Provisioner.Start(r.Context(), req.Name))
		}
	})
	for path, call := range map[string]func(context.Context, api.ShedRequest) error{
		"POST /v1/down": func(ctx context.Context, q api.ShedRequest) error { return s.Provisioner.Down(ctx, q.Name, q.Force) },
		"POST /v1/stop": func(ctx context.Context, q api.ShedRequest) error { return s.Provisioner.Stop(ctx, q.Name) },
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			var req api.ShedRequest
			if !decodeBody(w, r, &req) {
				return
			}
			if err := call(r.Context(), req); err != nil {
				writeErr(w, http.StatusConflict, err)
				return
			}
			writeJSON(w, http.StatusOK, req)
		})
	}
}

// writeMade answers with the shed, or 409 and the error.
func writeMade(w http.ResponseWriter, code int) func(api.MadeShed, error) {
	return func(m api.MadeShed, err error) {
		if err != nil {
			writeErr(w, http.StatusConflict, err)
			return
		}
		writeJSON(w, code, m)
	}
}

// decodeBody strictly decodes a small JSON body, answering 400 if it cannot.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeErr(w, http.StatusBadRequest, errors.New("control: bad request body: "+err.Error()))
		return false
	}
	return true
}
