package bus

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodePayload(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want: "" decodes, else a substring of the error
	}{
		{`{"server_url":"ghcr.io"}`, ""},
		{`{"server_url":"ghcr.io","shed":"other"}`, `unknown field "shed"`},
		{`{"server_url":"ghcr.io"} {}`, "trailing data"},
		{`{"server_url":1}`, "cannot unmarshal"},
		{``, "EOF"},
	} {
		var req DockerGetRequest
		err := DecodePayload(NSDocker, json.RawMessage(tc.in), &req)
		if tc.want == "" {
			if err != nil || req.ServerURL != "ghcr.io" {
				t.Errorf("%s: %+v %v", tc.in, req, err)
			}
			continue
		}
		if CodeOf(err) != CodeBadRequest || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.(*Error).Message, NSDocker+" payload: ") {
			t.Errorf("%s: got %v, want BAD_REQUEST naming %s and %q", tc.in, err, NSDocker, tc.want)
		}
	}
}

// FuzzDecodePayload: whatever a guest sends, the decoder answers a value or
// BAD_REQUEST, and what it accepts is one JSON value of known fields.
func FuzzDecodePayload(f *testing.F) {
	f.Add([]byte(`{"key":"AAAA","data":"AA==","flags":2,"agent_conn":1}`))
	f.Add([]byte(`{"key":"AAAA"}{"key":"AAAA"}`))
	f.Add([]byte(`{"Key":"AAAA","extra":true}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		var req SSHSignRequest
		err := DecodePayload(NSSSHAgent, p, &req)
		if err != nil {
			if CodeOf(err) != CodeBadRequest {
				t.Fatalf("code %s, want BAD_REQUEST: %v", CodeOf(err), err)
			}
			return
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(p, &fields) != nil {
			return // null decodes to the zero value
		}
		for k := range fields {
			switch strings.ToLower(k) {
			case "key", "data", "flags", "agent_conn":
			default:
				t.Fatalf("accepted unknown field %q", k)
			}
		}
	})
}
