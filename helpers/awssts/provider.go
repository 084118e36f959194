package awssts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/spuff-dev/spuff/app/config"
)

// ErrNoRole is returned for a shed whose config names no role.
var ErrNoRole = errors.New("awssts: no AWS role is configured")

// Provider is the aws.CredentialsProvider of one shed and role. Providers
// of the same Service share its cache, so any number of them for one shed
// cause one AssumeRole per session.
type Provider struct {
	s *Service
	p params
}

var _ aws.CredentialsProvider = (*Provider)(nil)

// Provider returns the credentials provider of the shed c describes (its
// effective config: role, session policy, source profile…).
func (s *Service) Provider(c *config.Shed) (*Provider, error) {
	if c == nil || c.Role == "" {
		return nil, ErrNoRole
	}
	return &Provider{s: s, p: paramsOf(c)}, nil
}

// Retrieve returns the shed's session credentials, assuming the role when
// the cached session is missing or within cache_refresh_before of expiry.
func (p *Provider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	return p.s.retrieve(ctx, p.p)
}

// Cached reports whether Retrieve would answer from the cache now.
func (p *Provider) Cached() bool {
	_, ok := p.s.cached(p.p, p.p.key())
	return ok
}

// Role is the role ARN this provider assumes.
func (p *Provider) Role() string { return p.p.Role }

func (s *Service) assumeRole(ctx context.Context, p params) (aws.Credentials, error) {
	start := time.Now()
	fail := func(stage string, err error) (aws.Credentials, error) {
		e := &AssumeError{Shed: p.Shed, Role: p.Role, Profile: p.SourceProfile, Region: p.Region, Endpoint: p.Endpoint, ExternalID: p.ExternalID != "", stage: stage, Err: err}
		s.log.Warn("awssts: AssumeRole failed", "shed", p.Shed, "role", p.Role, "source_profile", p.SourceProfile, "err", config.RedactURLs(err.Error()))
		return aws.Credentials{}, e
	}
	opts := make([]func(*awsconfig.LoadOptions) error, 0, 2+len(s.load))
	if p.SourceProfile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(p.SourceProfile))
	}
	if p.Region != "" {
		opts = append(opts, awsconfig.WithRegion(p.Region))
	}
	opts = append(opts, s.load...)
	// Loaded afresh for every session, so rotated keys and a renewed SSO
	// login are picked up without restarting the host.
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fail(stageSource, err)
	}
	client := sts.NewFromConfig(cfg, func(o *sts.Options) {
		if p.Endpoint != "" {
			o.BaseEndpoint = aws.String(p.Endpoint)
		}
	})
	in := &sts.AssumeRoleInput{
		RoleArn:         aws.String(p.Role),
		RoleSessionName: aws.String(SessionName(p.Shed, s.now())),
		DurationSeconds: aws.Int32(int32(p.Duration / time.Second)),
	}
	if p.SessionPolicy != "" {
		in.Policy = aws.String(p.SessionPolicy)
	}
	if p.ExternalID != "" {
		in.ExternalId = aws.String(p.ExternalID)
	}
	if p.SessionTags {
		in.Tags = []ststypes.Tag{{Key: aws.String("shed"), Value: aws.String(p.Shed)}}
	}
	s.assumeCalls.Add(1)
	out, err := client.AssumeRole(ctx, in)
	if err != nil {
		s.assumeErrors.Add(1)
		return fail(stageAssume, err)
	}
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.Expiration == nil {
		s.assumeErrors.Add(1)
		return fail(stageAssume, errors.New("STS answered without credentials"))
	}
	creds := aws.Credentials{
		AccessKeyID:     *c.AccessKeyId,
		SecretAccessKey: *c.SecretAccessKey,
		SessionToken:    aws.ToString(c.SessionToken),
		Source:          "spuff-awssts",
		CanExpire:       true,
		Expires:         *c.Expiration,
	}
	s.log.Info("awssts: assumed role", "shed", p.Shed, "role", p.Role, "expires", creds.Expires.UTC().Format(time.RFC3339), "took", time.Since(start).Round(time.Millisecond))
	return creds, nil
}

const (
	stageSource = "source"
	stageAssume = "assume"
)

// AssumeError is a failed AssumeRole. Its Error is for the host's log; Guest
// is the text a shed may see: what failed and how to fix it on the host,
// with no credential and nothing from a credential_process's output.
type AssumeError struct {
	Shed, Role, Profile, Region, Endpoint string
	ExternalID                            bool
	stage                                 string
	Err                                   error
}

func (e *AssumeError) Error() string {
	return config.RedactURLs(fmt.Sprintf("awssts: assuming %s for shed %q: %v", e.Role, e.Shed, e.Err))
}

func (e *AssumeError) Unwrap() error { return e.Err }

// Guest describes the failure for the shed, with any URL's userinfo
// redacted.
func (e *AssumeError) Guest() string { return config.RedactURLs(e.guest()) }

func (e *AssumeError) guest() string {
	what := "assuming role " + e.Role + " for shed " + strconv.Quote(e.Shed) + " failed on your computer"
	profile := e.Profile
	if profile == "" {
		profile = "default"
	}
	checkProfile := fmt.Sprintf("check aws.source_profile %q in the spuff config; `aws sts get-caller-identity --profile %s` must work on your computer", profile, profile)
	if e.stage == stageSource {
		return fmt.Sprintf("%s: the source profile %q could not be loaded; %s", what, profile, checkProfile)
	}
	var ae smithy.APIError
	if errors.As(e.Err, &ae) {
		return fmt.Sprintf("%s: %s: %s; %s", what, ae.ErrorCode(), ae.ErrorMessage(), e.hint(ae.ErrorCode(), profile))
	}
	var ne net.Error
	if errors.As(e.Err, &ne) {
		where := "STS in region " + e.Region
		if e.Endpoint != "" {
			where = "STS at " + e.Endpoint
		}
		return fmt.Sprintf("%s: %s could not be reached; check the network and aws.sts_endpoint / aws.region in the spuff config", what, where)
	}
	// Most often the source credentials could not be retrieved (an expired
	// SSO login, a failing credential_process); their own text stays in the
	// host's log.
	return fmt.Sprintf("%s: the source credentials could not be used (details in the spuff log); %s", what, checkProfile)
}

func (e *AssumeError) hint(code, profile string) string {
	switch code {
	case "AccessDenied", "AccessDeniedException":
		h := fmt.Sprintf("check that source profile %q may call sts:AssumeRole on %s (the role's trust policy", profile, e.Role)
		if e.ExternalID {
			h += " and aws.external_id"
		}
		return h + ")"
	case "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException", "InvalidAccessKeyId":
		return fmt.Sprintf("the credentials of source profile %q are invalid or expired; renew them on your computer (`aws sso login --profile %s` for SSO)", profile, profile)
	case "MalformedPolicyDocument", "PackedPolicyTooLarge":
		return fmt.Sprintf("sheds.%s.aws.session_policy is not an IAM policy STS accepts", e.Shed)
	case "RegionDisabledException":
		return fmt.Sprintf("STS is not activated in region %s; set aws.region or aws.sts_endpoint", e.Region)
	case "ValidationError", "InvalidParameterValue":
		return "check the role ARN and aws.session_duration (at most the role's maximum session duration)"
	default:
		return "check the role and aws.source_profile in the spuff config"
	}
}

// sessionNameChars are the characters STS accepts in a RoleSessionName.
var sessionNameChars = regexp.MustCompile(`[^\w+=,.@-]`)

// SessionName is the RoleSessionName of a session for shed started at t:
// spuff-<shed>-<unix>, in STS's character set and at most 64 characters
// (the shed name is shortened; the time is kept whole).
func SessionName(shed string, t time.Time) string {
	const max = 64
	suffix := "-" + strconv.FormatInt(t.Unix(), 10)
	name := sessionNameChars.ReplaceAllString(shed, "-")
	if room := max - len("spuff-") - len(suffix); len(name) > room {
		name = name[:room]
	}
	return "spuff-" + name + suffix
}
