package dockercreds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/helper"
)

// Source is where the service finds host credentials; *Store is the real one.
type Source interface {
	Get(ctx context.Context, registry string) (Creds, error)
	List(ctx context.Context) (map[string]string, error)
}

var _ Source = (*Store)(nil)

// Service serves the docker-credentials namespace to the broker.
type Service struct {
	src Source
	log *slog.Logger
}

var _ helper.Service = (*Service)(nil)

// NewService serves credentials from src; log may be nil.
func NewService(src Source, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{src: src, log: log}
}

const readOnly = "spuff brokers docker credentials read-only; run `docker login` on your computer"

// Describe reads the request. A get for a registry outside the allowlist is
// described without an approval class, so nobody is asked about a request
// Serve will refuse anyway.
func (s *Service) Describe(_ context.Context, r *helper.Request) (*helper.Action, error) {
	switch r.Op {
	case bus.OpGet:
		reg, err := registryOf(r.Payload)
		if err != nil {
			return nil, err
		}
		a := &helper.Action{Subject: reg, Detail: reg}
		if !allowlist(r).Allows(reg) {
			a.Detail = reg + " not allowlisted"
			return a, nil
		}
		a.Class = helper.ClassDocker
		a.Prompt = fmt.Sprintf("%s wants your docker login for %s", r.Shed, reg)
		return a, nil
	case bus.OpList:
		return &helper.Action{Detail: "list"}, nil
	case bus.OpStore, bus.OpErase:
		// Refused whatever it says; the audit names the registry when it can.
		a := &helper.Action{Detail: "refused: read-only"}
		if reg, err := registryOf(r.Payload); err == nil {
			a.Subject, a.Detail = reg, reg+" refused: read-only"
		}
		return a, nil
	default:
		return nil, bus.Errorf(bus.CodeBadRequest, "docker-credentials has no operation %.40q", r.Op)
	}
}

// Serve answers get and list; store and erase are always NOT_ALLOWED.
func (s *Service) Serve(ctx context.Context, r *helper.Request, a *helper.Action) (any, error) {
	switch r.Op {
	case bus.OpGet:
		reg, err := registryOf(r.Payload)
		if err != nil {
			return nil, err
		}
		if !allowlist(r).Allows(reg) {
			return nil, bus.Errorf(bus.CodeNotAllowed, "registry %s is not in the docker allowlist of shed %q; add it to docker.registries or sheds.%s.docker.registries in the spuff config on your computer", reg, r.Shed, r.Shed)
		}
		c, err := s.src.Get(ctx, reg)
		switch {
		case errors.Is(err, ErrNotFound):
			a.Detail = reg + " no credentials"
			return nil, bus.Errorf(bus.CodeKeyNotFound, "your computer has no docker login for %s; run `docker login %s` there", reg, reg)
		case err != nil:
			s.log.Warn("dockercreds: get failed", "shed", r.Shed, "registry", reg, "err", err)
			a.Detail = reg + " host helper failed"
			return nil, upstream(err)
		}
		a.Detail = reg + " user:" + c.Username
		return bus.DockerGetResponse{Username: c.Username, Secret: c.Secret}, nil
	case bus.OpList:
		all, err := s.src.List(ctx)
		if err != nil {
			s.log.Warn("dockercreds: list failed", "shed", r.Shed, "err", err)
			return nil, upstream(err)
		}
		al := allowlist(r)
		out := make(map[string]string)
		for reg, user := range all {
			if al.Allows(reg) {
				out[reg] = user
			}
		}
		a.Detail = fmt.Sprintf("list: %d registries", len(out))
		return bus.DockerListResponse{Registries: out}, nil
	case bus.OpStore, bus.OpErase:
		return nil, bus.Errorf(bus.CodeNotAllowed, "%s", readOnly)
	default:
		return nil, bus.Errorf(bus.CodeBadRequest, "docker-credentials has no operation %.40q", r.Op)
	}
}

func allowlist(r *helper.Request) *Allowlist {
	if r.Config == nil {
		return &Allowlist{}
	}
	return NewAllowlist(r.Config.Docker)
}

func upstream(err error) error {
	var he *HelperError
	if errors.As(err, &he) {
		return bus.Errorf(bus.CodeUpstream, "%s on your computer failed (%s); try `echo SERVER | %s get` there", he.Helper, config.RedactURLs(he.Err.Error()), he.Helper)
	}
	return bus.Errorf(bus.CodeUpstream, "reading docker credentials on your computer failed; check its docker config.json")
}

// registryOf strictly decodes a DockerGetRequest and normalizes its server URL.
func registryOf(payload json.RawMessage) (string, error) {
	var req bus.DockerGetRequest
	if err := bus.DecodePayload(bus.NSDocker, payload, &req); err != nil {
		return "", err
	}
	reg, err := Normalize(req.ServerURL)
	if err != nil {
		return "", bus.Errorf(bus.CodeBadRequest, "%v", err)
	}
	return reg, nil
}
