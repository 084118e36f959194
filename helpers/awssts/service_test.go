package awssts_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/awssts"
	"github.com/spuff-dev/spuff/helpers/helper"
)

const (
	roleA = "arn:aws:iam::123456789012:role/dev"
	roleB = "arn:aws:iam::123456789012:role/readonly"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// hostConfig is a config whose source profile is "dev" and whose STS is sts.
func hostConfig(sts string) *config.Config {
	c := config.Default()
	c.AWS.SourceProfile = "dev"
	c.AWS.DefaultRole = roleA
	c.AWS.STSEndpoint = sts
	return c
}

type fixture struct {
	sts    *fakeSTS
	svc    *awssts.Service
	clock  *clock
	source string // the source profile's secret key
	srcID  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{sts: newFakeSTS(t), clock: &clock{t: time.Now()}}
	u, load := sourceProfile(t)
	f.source, f.srcID = u.SecretKey, u.AccessKey
	f.svc = awssts.New(awssts.Options{Now: f.clock.Now, LoadOptions: load})
	return f
}

// get runs Describe then Serve as the broker does.
func (f *fixture) get(t *testing.T, c *config.Config, shed, payload string) (*helper.Action, bus.AWSCredentials, error) {
	t.Helper()
	sc := c.ForShed(shed)
	r := &helper.Request{ID: bus.NewID(), Shed: shed, NS: bus.NSAWS, Op: bus.OpGetCredentials, Payload: json.RawMessage(payload), Config: &sc}
	a, err := f.svc.Describe(context.Background(), r)
	if err != nil {
		return nil, bus.AWSCredentials{}, err
	}
	out, err := f.svc.Serve(context.Background(), r, a)
	if err != nil {
		return a, bus.AWSCredentials{}, err
	}
	return a, out.(bus.AWSCredentials), nil
}

func TestSessionName(t *testing.T) {
	at := time.Unix(1767225600, 0)
	valid := regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	for _, tc := range []struct{ shed, want string }{
		{"my-service", "spuff-my-service-1767225600"},
		{"a", "spuff-a-1767225600"},
		{strings.Repeat("x", 63), "spuff-" + strings.Repeat("x", 47) + "-1767225600"},
		{"we ird/shed:ü", "spuff-we-ird-shed---1767225600"},
	} {
		got := awssts.SessionName(tc.shed, at)
		if got != tc.want {
			t.Errorf("SessionName(%q) = %q, want %q", tc.shed, got, tc.want)
		}
		if !valid.MatchString(got) {
			t.Errorf("SessionName(%q) = %q is not a valid RoleSessionName", tc.shed, got)
		}
	}
}

// TestGuestCannotChooseTheRole sends every field a guest might try and
// checks STS saw only what the host's config says.
func TestGuestCannotChooseTheRole(t *testing.T) {
	f := newFixture(t)
	c := hostConfig(f.sts.srv.URL)
	c.Sheds = map[string]config.ShedOverride{"alpha": {AWS: &config.AWSOverride{Role: roleB}}}
	payload := `{"RoleArn":"arn:aws:iam::999999999999:role/admin","role":"admin","role_arn":"arn:aws:iam::999999999999:role/admin","DurationSeconds":43200,"shed":"beta","Policy":"{}","ExternalId":"x"}`
	a, creds, err := f.get(t, c, "alpha", payload)
	if err != nil {
		t.Fatal(err)
	}
	if a.Subject != roleB || !strings.HasPrefix(a.Detail, roleB+" expires:") {
		t.Errorf("action subject %q detail %q, want the configured role %s", a.Subject, a.Detail, roleB)
	}
	calls := f.sts.calls()
	if len(calls) != 1 {
		t.Fatalf("%d AssumeRole calls, want 1", len(calls))
	}
	got := calls[0]
	if got.Get("Action") != "AssumeRole" || got.Get("RoleArn") != roleB {
		t.Errorf("STS got Action=%q RoleArn=%q, want AssumeRole of %s", got.Get("Action"), got.Get("RoleArn"), roleB)
	}
	if got.Get("DurationSeconds") != "3600" {
		t.Errorf("DurationSeconds = %q, want the default 3600", got.Get("DurationSeconds"))
	}
	for _, k := range []string{"Policy", "ExternalId", "Tags.member.1.Key"} {
		if got.Has(k) {
			t.Errorf("STS got %s=%q though the host config sets none", k, got.Get(k))
		}
	}
	if !strings.HasPrefix(got.Get("RoleSessionName"), "spuff-alpha-") {
		t.Errorf("RoleSessionName = %q, want spuff-alpha-<unix>", got.Get("RoleSessionName"))
	}
	if auth := f.sts.auth[0]; !strings.Contains(auth, "Credential="+f.srcID+"/") {
		t.Errorf("AssumeRole was not signed with the source profile's key: %q", auth)
	}
	if creds.AccessKeyID != "ASIAFAKE0001" || creds.SessionToken == "" || creds.Expiration.IsZero() {
		t.Errorf("credentials %q token %t expiration %v", creds.AccessKeyID, creds.SessionToken != "", creds.Expiration)
	}
}

func TestAssumeRoleParameters(t *testing.T) {
	f := newFixture(t)
	c := hostConfig(f.sts.srv.URL)
	c.AWS.SessionDuration = 2 * time.Hour
	c.AWS.SessionTags = true
	c.AWS.ExternalID = "global-ext"
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*"}]}`
	c.Sheds = map[string]config.ShedOverride{"beta": {AWS: &config.AWSOverride{SessionPolicy: policy, ExternalID: "beta-ext", Region: "eu-west-1"}}}
	if _, _, err := f.get(t, c, "beta", ""); err != nil {
		t.Fatal(err)
	}
	got := f.sts.calls()[0]
	for k, want := range map[string]string{
		"RoleArn":             roleA,
		"DurationSeconds":     "7200",
		"Policy":              policy,
		"ExternalId":          "beta-ext",
		"Tags.member.1.Key":   "shed",
		"Tags.member.1.Value": "beta",
	} {
		if got.Get(k) != want {
			t.Errorf("STS got %s=%q, want %q", k, got.Get(k), want)
		}
	}
	if auth := f.sts.auth[0]; !strings.Contains(auth, "/eu-west-1/sts/aws4_request") {
		t.Errorf("AssumeRole was not signed for the shed's region eu-west-1: %q", auth)
	}
}

func TestNoRoleIsNotAllowed(t *testing.T) {
	f := newFixture(t)
	c := hostConfig(f.sts.srv.URL)
	c.AWS.DefaultRole = ""
	c.Sheds = map[string]config.ShedOverride{"withrole": {AWS: &config.AWSOverride{Role: roleB}}}
	a, _, err := f.get(t, c, "norole", `{"RoleArn":"`+roleA+`"}`)
	if bus.CodeOf(err) != bus.CodeNotAllowed {
		t.Fatalf("err %v, want NOT_ALLOWED", err)
	}
	if !strings.Contains(err.Error(), `shed "norole"`) || !strings.Contains(err.Error(), "aws.default_role") {
		t.Errorf("message %q does not say how to configure a role", err)
	}
	if a.Class != "" || a.Detail != "no role configured" {
		t.Errorf("action %+v: a shed without a role must not ask anyone", a)
	}
	if n := len(f.sts.calls()); n != 0 {
		t.Errorf("%d AssumeRole calls for a shed without a role", n)
	}
	if _, _, err := f.get(t, c, "withrole", ""); err != nil {
		t.Errorf("a shed with its own role: %v", err)
	}
}

func TestUnknownOperation(t *testing.T) {
	f := newFixture(t)
	sc := hostConfig(f.sts.srv.URL).ForShed("a")
	_, err := f.svc.Describe(context.Background(), &helper.Request{Shed: "a", NS: bus.NSAWS, Op: "put_credentials", Config: &sc})
	if bus.CodeOf(err) != bus.CodeBadRequest {
		t.Errorf("err %v, want BAD_REQUEST", err)
	}
}

func TestAssumeRoleFailures(t *testing.T) {
	f := newFixture(t)
	f.sts.set(func(s *fakeSTS) { s.errCode = "AccessDenied" })
	c := hostConfig(f.sts.srv.URL)
	c.AWS.ExternalID = "ext"
	a, _, err := f.get(t, c, "alpha", "")
	if bus.CodeOf(err) != bus.CodeUpstream {
		t.Fatalf("err %v, want UPSTREAM_FAILED", err)
	}
	msg := err.Error()
	for _, want := range []string{"AccessDenied", roleA, "trust policy", "external_id", `"dev"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, f.source) || strings.Contains(msg, f.srcID) {
		t.Errorf("message %q carries the source profile's key", msg)
	}
	if a.Detail != roleA+" assume failed" {
		t.Errorf("detail %q", a.Detail)
	}
	if st := f.svc.Stats(); st.AssumeRoleCalls != 1 || st.AssumeRoleErrors != 1 || st.Sessions != 0 {
		t.Errorf("stats %+v after one failure", st)
	}
	// A failure is not cached: the next request asks STS again.
	f.sts.set(func(s *fakeSTS) { s.errCode = "" })
	if _, _, err := f.get(t, c, "alpha", ""); err != nil {
		t.Fatalf("after STS recovered: %v", err)
	}

	t.Run("missing source profile", func(t *testing.T) {
		c := hostConfig(f.sts.srv.URL)
		c.AWS.SourceProfile = "nosuch"
		_, _, err := f.get(t, c, "alpha", "")
		if bus.CodeOf(err) != bus.CodeUpstream || !strings.Contains(err.Error(), `source profile "nosuch" could not be loaded`) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("unreachable STS", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		c := hostConfig("http://" + addr)
		_, _, err = f.get(t, c, "alpha", "")
		if bus.CodeOf(err) != bus.CodeUpstream || !strings.Contains(err.Error(), "STS at http://"+addr+" could not be reached") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("expired source credentials", func(t *testing.T) {
		f.sts.set(func(s *fakeSTS) { s.errCode = "ExpiredToken" })
		defer f.sts.set(func(s *fakeSTS) { s.errCode = "" })
		_, _, err := f.get(t, hostConfig(f.sts.srv.URL), "gamma", "")
		if !strings.Contains(fmtErr(err), "aws sso login --profile dev") {
			t.Errorf("err %v", err)
		}
	})
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestCacheAndRefresh(t *testing.T) {
	f := newFixture(t)
	c := hostConfig(f.sts.srv.URL)
	a, first, err := f.get(t, c, "alpha", "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Class != helper.ClassAWS {
		t.Errorf("a host cache miss has class %q, want %q", a.Class, helper.ClassAWS)
	}
	if want := roleA + " expires:" + first.Expiration.UTC().Format("15:04"); a.Detail != want {
		t.Errorf("detail %q, want %q", a.Detail, want)
	}
	a, second, err := f.get(t, c, "alpha", "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Class != "" {
		t.Errorf("a host cache hit has class %q; it must not ask again", a.Class)
	}
	if second != first {
		t.Errorf("a cache hit returned other credentials")
	}
	if st := f.svc.Stats(); st.AssumeRoleCalls != 1 || st.CacheHits != 1 || st.CacheMisses != 1 || st.Sessions != 1 {
		t.Errorf("stats %+v", st)
	}
	// By default a session is replaced 15 minutes before it expires:
	// botocore (the AWS CLI, boto3) asks a container endpoint again once
	// its credentials have less than 15 minutes left, and would ask on
	// every call if the host kept serving the old ones. Sixteen minutes
	// before expiry the session is still used…
	f.clock.Set(first.Expiration.Add(-16 * time.Minute))
	if _, got, _ := f.get(t, c, "alpha", ""); got != first {
		t.Errorf("refreshed 16m before expiry; cache_refresh_before is 15m")
	}
	// …fourteen minutes before, it is replaced.
	f.clock.Set(first.Expiration.Add(-14 * time.Minute))
	a, third, err := f.get(t, c, "alpha", "")
	if err != nil {
		t.Fatal(err)
	}
	if third.AccessKeyID == first.AccessKeyID || len(f.sts.calls()) != 2 || a.Class != helper.ClassAWS {
		t.Errorf("14m before expiry: key changed %t, %d AssumeRole calls, class %q", third.AccessKeyID != first.AccessKeyID, len(f.sts.calls()), a.Class)
	}
}

func TestCacheIsPerShedRoleAndPolicy(t *testing.T) {
	f := newFixture(t)
	c := hostConfig(f.sts.srv.URL)
	calls := func() int { return len(f.sts.calls()) }
	mustGet := func(cfg *config.Config, shed string) bus.AWSCredentials {
		t.Helper()
		_, cr, err := f.get(t, cfg, shed, "")
		if err != nil {
			t.Fatal(err)
		}
		return cr
	}
	a1 := mustGet(c, "alpha")
	b1 := mustGet(c, "beta")
	if calls() != 2 || a1.AccessKeyID == b1.AccessKeyID {
		t.Fatalf("two sheds with one role share a session (%d calls)", calls())
	}
	// A narrower policy for alpha is a different session; so is another role.
	c2 := hostConfig(f.sts.srv.URL)
	c2.Sheds = map[string]config.ShedOverride{"alpha": {AWS: &config.AWSOverride{SessionPolicy: `{"Version":"2012-10-17","Statement":[]}`}}}
	if mustGet(c2, "alpha") == a1 || calls() != 3 {
		t.Errorf("a changed session policy reused the old session")
	}
	c3 := hostConfig(f.sts.srv.URL)
	c3.AWS.DefaultRole = roleB
	if mustGet(c3, "alpha") == a1 || calls() != 4 {
		t.Errorf("a changed role reused the old session")
	}
	if mustGet(c, "alpha") != a1 || calls() != 4 {
		t.Errorf("the first config's session was not kept")
	}
	f.svc.Forget("alpha")
	if mustGet(c, "alpha") == a1 || calls() != 5 {
		t.Errorf("Forget did not drop alpha's session")
	}
	if mustGet(c, "beta") != b1 || calls() != 5 {
		t.Errorf("Forget(alpha) dropped beta's session")
	}
}

func TestOneAssumeRoleInFlight(t *testing.T) {
	f := newFixture(t)
	f.sts.set(func(s *fakeSTS) { s.delay = 200 * time.Millisecond })
	sc := hostConfig(f.sts.srv.URL).ForShed("alpha")
	p, err := f.svc.Provider(&sc)
	if err != nil {
		t.Fatal(err)
	}
	// A caller that gives up early must not fail the others.
	quick, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	quickErr := make(chan error, 1)
	go func() { _, err := p.Retrieve(quick); quickErr <- err }()

	const n = 100
	var wg sync.WaitGroup
	keys := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.Retrieve(context.Background())
			keys[i], errs[i] = c.AccessKeyID, err
		}()
	}
	wg.Wait()
	if err := <-quickErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the impatient caller got %v, want its deadline", err)
	}
	for i := range n {
		if errs[i] != nil || keys[i] != keys[0] {
			t.Fatalf("caller %d: %v (key same as the first: %t)", i, errs[i], keys[i] == keys[0])
		}
	}
	if st := f.svc.Stats(); st.AssumeRoleCalls != 1 || len(f.sts.calls()) != 1 {
		t.Errorf("%d concurrent retrievals made %d AssumeRole calls (stats %+v), want 1", n+1, len(f.sts.calls()), st)
	}
}

// TestSessionShorterThanRefreshWindow keeps a 10m session useful when
// cache_refresh_before is 15m, rather than missing on every request.
func TestSessionShorterThanRefreshWindow(t *testing.T) {
	f := newFixture(t)
	f.sts.set(func(s *fakeSTS) { s.lifetime = 15 * time.Minute })
	c := hostConfig(f.sts.srv.URL)
	c.AWS.SessionDuration = 15 * time.Minute
	c.AWS.CacheRefreshBefore = 20 * time.Minute
	for range 3 {
		if _, _, err := f.get(t, c, "alpha", ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.sts.calls()); n != 1 {
		t.Errorf("%d AssumeRole calls, want 1", n)
	}
}

// An sts_endpoint with userinfo never passes validation, but if one reaches
// the service (or an SDK spells a URL out) neither the shed's error nor the
// host's log repeats the user or password.
func TestEndpointUserinfoNeverEchoed(t *testing.T) {
	const user, pass = "AKIAUSERINFOEXAMPLE", "userinfoSecretExample"
	var logs strings.Builder
	f := newFixture(t)
	_, load := sourceProfile(t)
	f.svc = awssts.New(awssts.Options{Now: f.clock.Now, LoadOptions: load, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, ep := range []string{"http://" + user + ":" + pass + "@" + addr, strings.Replace(f.sts.srv.URL, "://", "://"+user+":"+pass+"@", 1)} {
		_, _, err = f.get(t, hostConfig(ep), "alpha", "")
		if err == nil {
			continue // the fake STS does not check the userinfo
		}
		if msg := err.Error(); strings.Contains(msg, user) || strings.Contains(msg, pass) {
			t.Errorf("error to the shed repeats the endpoint's userinfo: %s", msg)
		}
	}
	if strings.Contains(logs.String(), user) || strings.Contains(logs.String(), pass) {
		t.Errorf("the host log repeats the endpoint's userinfo:\n%s", logs.String())
	}
}
