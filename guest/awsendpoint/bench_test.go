package awsendpoint_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/spuff-dev/spuff/guest/awsendpoint"
)

// BenchmarkGET: one credential GET over loopback HTTP with a keep-alive
// client, the host answering at once: the endpoint's own share of a
// shed's credential request.
func BenchmarkGET(b *testing.B) {
	l, err := awsendpoint.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go awsendpoint.Serve(ctx, l, awsendpoint.NewHandler(&hostStub{}, token, nil))
	url := awsendpoint.URL(l.Addr().String())
	c := &http.Client{}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", token)
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}
