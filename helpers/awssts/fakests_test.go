package awssts_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/spuff-dev/spuff/helpers/awssts/awsststest"
)

// fakeSTS stands in for AWS STS (a cloud provider API, the one boundary the
// house rules let a test fake) where a test must see exactly what was asked:
// MinIO takes any RoleArn and ignores it, so only a recording STS proves
// which role the host chose. Behaviour against a real STS is in minio_test.go.
type fakeSTS struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []url.Values
	auth     []string
	errCode  string        // when set, every AssumeRole fails with this code
	delay    time.Duration // before answering
	lifetime time.Duration // of the credentials handed out (default 1h)
	n        int
}

func newFakeSTS(t testing.TB) *fakeSTS {
	f := &fakeSTS{lifetime: time.Hour}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSTS) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, r.PostForm)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.n++
	n, code, delay, life := f.n, f.errCode, f.delay, f.lifetime
	f.mu.Unlock()
	time.Sleep(delay)
	w.Header().Set("Content-Type", "text/xml")
	if code != "" {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>User: arn:aws:iam::123456789012:user/dev is not authorized to perform: sts:AssumeRole</Message></Error><RequestId>r-%d</RequestId></ErrorResponse>`, code, n)
		return
	}
	exp := time.Now().Add(life).UTC().Format(time.RFC3339)
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>`+
		`<Credentials><AccessKeyId>ASIAFAKE%04d</AccessKeyId><SecretAccessKey>session-secret-%d</SecretAccessKey><SessionToken>session-token-%d</SessionToken><Expiration>%s</Expiration></Credentials>`+
		`<AssumedRoleUser><Arn>%s/x</Arn><AssumedRoleId>AROA:x</AssumedRoleId></AssumedRoleUser>`+
		`</AssumeRoleResult><ResponseMetadata><RequestId>r-%d</RequestId></ResponseMetadata></AssumeRoleResponse>`,
		n, n, n, exp, r.PostForm.Get("RoleArn"), n)
}

func (f *fakeSTS) calls() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.requests...)
}

func (f *fakeSTS) set(fn func(*fakeSTS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// sourceProfile writes a scratch ~/.aws with profile "dev" holding a
// long-lived key pair and returns load options that read only it.
func sourceProfile(t testing.TB) (awsststest.User, []func(*awsconfig.LoadOptions) error) {
	t.Helper()
	u := awsststest.User{AccessKey: "AKIASOURCEKEY0000001", SecretKey: awsststest.RandomSecret()}
	f := awsststest.WriteProfile(t, t.TempDir(), "dev", u)
	return u, []func(*awsconfig.LoadOptions) error{
		awsconfig.WithSharedConfigFiles([]string{f.Config}),
		awsconfig.WithSharedCredentialsFiles([]string{f.Credentials}),
		awsconfig.WithRetryMaxAttempts(1),
	}
}
