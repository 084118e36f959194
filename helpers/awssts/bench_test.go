package awssts_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/awssts"
	"github.com/spuff-dev/spuff/helpers/helper"
)

// BenchmarkServeCacheHit: the host side of a credential request whose
// session is cached, Describe then Serve as the broker calls them.
func BenchmarkServeCacheHit(b *testing.B) {
	sts := newFakeSTS(b)
	_, load := sourceProfile(b)
	svc := awssts.New(awssts.Options{LoadOptions: load})
	sc := hostConfig(sts.srv.URL).ForShed("alpha")
	r := &helper.Request{ID: bus.NewID(), Shed: "alpha", NS: bus.NSAWS, Op: bus.OpGetCredentials, Payload: json.RawMessage(`{}`), Config: &sc}
	ctx := context.Background()
	serve := func() {
		a, err := svc.Describe(ctx, r)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := svc.Serve(ctx, r, a); err != nil {
			b.Fatal(err)
		}
	}
	serve()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		serve()
	}
	b.StopTimer()
	if st := svc.Stats(); st.AssumeRoleCalls != 1 {
		b.Fatalf("%d AssumeRole calls; the benchmark measured misses", st.AssumeRoleCalls)
	}
}
