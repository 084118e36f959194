package awssts_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/helpers/awssts"
	"github.com/spuff-dev/spuff/helpers/awssts/awsststest"
)

// minioFixture is a real STS and S3 (MinIO) with a user whose long-lived
// keys are the host's source profile "dev".
type minioFixture struct {
	m      *awsststest.MinIO
	user   awsststest.User
	svc    *awssts.Service
	config *config.Config
}

func newMinIO(t *testing.T) *minioFixture {
	t.Helper()
	m := awsststest.StartMinIO(t)
	u := m.AddUser(t)
	m.MakeBucket(t, "spuff-one")
	files := awsststest.WriteProfile(t, t.TempDir(), "dev", u)
	svc := awssts.New(awssts.Options{LoadOptions: []func(*awsconfig.LoadOptions) error{
		awsconfig.WithSharedConfigFiles([]string{files.Config}),
		awsconfig.WithSharedCredentialsFiles([]string{files.Credentials}),
	}})
	c := config.Default()
	c.AWS.SourceProfile = "dev"
	c.AWS.Region = awsststest.Region
	c.AWS.DefaultRole = awsststest.Role
	c.AWS.STSEndpoint = m.Endpoint
	c.Sheds = map[string]config.ShedOverride{
		"locked": {AWS: &config.AWSOverride{SessionPolicy: awsststest.DenyListing}},
	}
	return &minioFixture{m: m, user: u, svc: svc, config: c}
}

func (f *minioFixture) provider(t *testing.T, shed string) *awssts.Provider {
	t.Helper()
	sc := f.config.ForShed(shed)
	p, err := f.svc.Provider(&sc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// s3Client is what a program in the shed would build, with p as its credentials.
func (f *minioFixture) s3Client(p aws.CredentialsProvider) *s3.Client {
	return s3.New(s3.Options{
		Region:       awsststest.Region,
		BaseEndpoint: aws.String(f.m.Endpoint),
		UsePathStyle: true,
		Credentials:  aws.NewCredentialsCache(p),
	})
}

func bucketNames(out *s3.ListBucketsOutput) []string {
	var names []string
	for _, b := range out.Buckets {
		names = append(names, aws.ToString(b.Name))
	}
	return names
}

func TestMinIOAssumeRole(t *testing.T) {
	f := newMinIO(t)
	ctx := context.Background()
	p := f.provider(t, "alpha")
	creds, err := p.Retrieve(ctx)
	if err != nil {
		t.Fatalf("AssumeRole against MinIO: %v\n%s", err, f.m.Log())
	}
	if creds.AccessKeyID == f.user.AccessKey || creds.SecretAccessKey == f.user.SecretKey || creds.SessionToken == "" || !creds.CanExpire {
		t.Fatalf("the credentials are not a fresh session (same key %t, token %t, expiring %t)",
			creds.AccessKeyID == f.user.AccessKey, creds.SessionToken != "", creds.CanExpire)
	}
	out, err := f.s3Client(p).ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatalf("listing buckets with the session: %v", err)
	}
	if names := bucketNames(out); !slices.Contains(names, "spuff-one") {
		t.Errorf("buckets %v, want spuff-one", names)
	}

	t.Run("session policy narrows one shed", func(t *testing.T) {
		locked := f.s3Client(f.provider(t, "locked"))
		_, err := locked.ListBuckets(ctx, &s3.ListBucketsInput{})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" {
			t.Fatalf("listing in the locked shed: %v, want AccessDenied", err)
		}
		// The rest of the role is still there: the policy narrowed it, it
		// did not break the session.
		if _, err := locked.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("spuff-one"), Key: aws.String("locked.txt"), Body: strings.NewReader("hi")}); err != nil {
			t.Errorf("writing an object in the locked shed: %v", err)
		}
		if _, err := f.s3Client(p).ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
			t.Errorf("the other shed lost its listing: %v", err)
		}
	})

	t.Run("100 concurrent retrievals, one AssumeRole", func(t *testing.T) {
		before := f.svc.Stats().AssumeRoleCalls
		crowd := f.provider(t, "crowd")
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := crowd.Retrieve(ctx); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := f.svc.Stats().AssumeRoleCalls - before; n != 1 {
			t.Errorf("100 concurrent retrievals made %d AssumeRole calls, want 1", n)
		}
	})

	t.Run("session tags", func(t *testing.T) {
		c := *f.config
		c.AWS.SessionTags = true
		sc := c.ForShed("tagged")
		tp, err := f.svc.Provider(&sc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.s3Client(tp).ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
			t.Errorf("with session tag shed=tagged: %v", err)
		}
	})

	t.Run("broker service", func(t *testing.T) {
		a, creds, err := (&fixture{svc: f.svc}).get(t, f.config, "viabroker", `{"RoleArn":"arn:aws:iam::999999999999:role/admin"}`)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(a.Detail, awsststest.Role+" expires:") || strings.Contains(a.Detail, creds.AccessKeyID) {
			t.Errorf("audit detail %q", a.Detail)
		}
		sp := staticProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)
		if _, err := f.s3Client(sp).ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
			t.Errorf("listing with the credentials Serve returned: %v", err)
		}
	})
}

func staticProvider(id, secret, token string) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: token}, nil
	})
}
