package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control/api"
)

// Broker is what the control API needs of the broker.
type Broker interface {
	Attach(name, url string) error
	Detach(name string) error
	Sheds() []api.Attachment
}

// Subscriber is one source of the event stream: the broker (attachments,
// requests), the approver (approvals), and the next thing that changes. A
// slow reader may miss events, never block the source; the channel may close
// when the subscription ends.
type Subscriber interface {
	Subscribe() (<-chan api.Event, func())
}

// Server serves the control API.
type Server struct {
	Broker    Broker
	AuditPath string
	// Status fills the parts of GET /v1/status the server cannot know.
	Status func() api.Status
	// Approvals serves the approval routes; nil leaves them out.
	Approvals Approvals
	// Provisioner serves up/down/start/stop and GET /v1/made; nil leaves
	// them out.
	Provisioner Provisioner
	// Events are merged into GET /v1/events, the one change stream.
	Events []Subscriber
	Log    *slog.Logger
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/sheds", s.sheds)
	mux.HandleFunc("POST /v1/sheds", s.attach)
	mux.HandleFunc("DELETE /v1/sheds/{name}", s.detach)
	mux.HandleFunc("GET /v1/audit", s.audit)
	mux.HandleFunc("GET /v1/events", s.events)
	if s.Approvals != nil {
		s.approvalRoutes(mux)
	}
	if s.Provisioner != nil {
		s.madeRoutes(mux)
	}
	return mux
}

// Serve serves the API on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, api.ErrorBody{Error: err.Error()})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	var st api.Status
	if s.Status != nil {
		st = s.Status()
	}
	st.PID = os.Getpid()
	st.AuditLog = s.AuditPath
	st.Sheds = s.Broker.Sheds()
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) sheds(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Broker.Sheds())
}

func (s *Server) attach(w http.ResponseWriter, r *http.Request) {
	var req api.AttachRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, errors.New("control: body must be {\"name\":…,\"url\":…}"))
		return
	}
	if err := s.Broker.Attach(req.Name, req.URL); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusCreated, req)
}

func (s *Server) detach(w http.ResponseWriter, r *http.Request) {
	if err := s.Broker.Detach(r.PathValue("name")); err != nil {
		writeErr(w, http.StatusNotFound, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// audit streams matching records as JSON lines; follow=1 keeps the stream open.
func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := audit.Filter{Shed: q.Get("shed"), NS: q.Get("ns"), Result: q.Get("result")}
	if err := f.Check(); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	if f.Shed != "" && !config.ValidShedName(f.Shed) {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("control: %q is not a shed name: use %s", f.Shed, config.ShedNameRule))
		return
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeErr(w, http.StatusBadRequest, errors.New("control: since must be RFC3339"))
			return
		}
		f.Since = t
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	emit := func(rec audit.Record) error {
		if err := enc.Encode(rec); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	}
	follow, _ := strconv.ParseBool(q.Get("follow"))
	if follow {
		if err := audit.Follow(r.Context(), s.AuditPath, f, emit); err != nil && r.Context().Err() == nil {
			s.logger().Warn("control: following audit log", "err", err)
		}
		return
	}
	fh, err := os.Open(s.AuditPath)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	defer fh.Close()
	if err := audit.Read(fh, f, emit); err != nil {
		s.logger().Warn("control: reading audit log", "err", err)
	}
}

// events streams every source's events as JSON lines until the client goes
// away.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	merged := make(chan api.Event, 64)
	for _, src := range s.Events {
		ch, cancel := src.Subscribe()
		defer cancel()
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case e, ok := <-ch:
					if !ok {
						return
					}
					select {
					case merged <- e:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	if enc.Encode(api.Event{Kind: api.EventOpen, Time: time.Now().UTC()}) != nil {
		return
	}
	for {
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-ctx.Done():
			return
		case e := <-merged:
			if enc.Encode(e) != nil {
				return
			}
		}
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}
