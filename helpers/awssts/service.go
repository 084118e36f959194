package awssts

import (
	"context"
	"errors"
	"time"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/helper"
)

var (
	_ helper.Service   = (*Service)(nil)
	_ helper.Forgetter = (*Service)(nil)
)

// Describe names the role the shed's config chooses. The payload is never
// read: whatever role, ARN or duration a guest sends means nothing. Only a
// host cache miss mints credentials, so only a miss asks for approval.
func (s *Service) Describe(_ context.Context, r *helper.Request) (*helper.Action, error) {
	if r.Op != bus.OpGetCredentials {
		return nil, bus.Errorf(bus.CodeBadRequest, "aws-credentials has no operation %.40q", r.Op)
	}
	p, err := s.Provider(r.Config)
	if err != nil {
		return &helper.Action{Detail: "no role configured"}, nil
	}
	a := &helper.Action{Subject: p.Role(), Detail: p.Role()}
	if !p.Cached() {
		a.Class = helper.ClassAWS
		a.Prompt = r.Shed + " wants AWS credentials for " + p.Role()
	}
	return a, nil
}

// Serve returns the shed's session credentials.
func (s *Service) Serve(ctx context.Context, r *helper.Request, a *helper.Action) (any, error) {
	if r.Op != bus.OpGetCredentials {
		return nil, bus.Errorf(bus.CodeBadRequest, "aws-credentials has no operation %.40q", r.Op)
	}
	p, err := s.Provider(r.Config)
	if err != nil {
		return nil, bus.Errorf(bus.CodeNotAllowed, "no AWS role is configured for shed %q; set sheds.NAME.aws.role or aws.default_role in ~/.spuff/config.yaml", r.Shed)
	}
	c, err := p.Retrieve(ctx)
	if err != nil {
		var ae *AssumeError
		if errors.As(err, &ae) {
			a.Detail = p.Role() + " assume failed"
			return nil, bus.Errorf(bus.CodeUpstream, "%s", ae.Guest())
		}
		// The guest gave up (its deadline passed); the AssumeRole goes on
		// and fills the cache for its retry.
		return nil, bus.Errorf(bus.CodeUpstream, "assuming role %s for shed %q is taking long on your computer (%s); retry", p.Role(), r.Shed, config.RedactURLs(err.Error()))
	}
	a.Detail = p.Role() + " expires:" + c.Expires.UTC().Format("15:04")
	return bus.AWSCredentials{
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		SessionToken:    c.SessionToken,
		Expiration:      c.Expires.UTC().Truncate(time.Second),
	}, nil
}
