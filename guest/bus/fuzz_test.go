package bus

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func FuzzReadFrame(f *testing.F) {
	f.Add(mustFrame(`{"v":1,"id":"a","type":"ping"}`))
	f.Add(binary.BigEndian.AppendUint32(nil, MaxFrame+1))
	f.Add([]byte{0, 0, 0, 3, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := ReadFrame(bytes.NewReader(b), nil)
		if err != nil {
			return
		}
		if len(body) == 0 || len(body) > MaxFrame {
			t.Fatalf("ReadFrame returned a %d-byte body", len(body))
		}
	})
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"0190a0c6-6a7d-7cc1-8000-000000000000","type":"request","ns":"ssh-agent","op":"sign","payload":{"key":"AA=="}}`))
	f.Add([]byte(`{"v":1,"id":"x","type":"response","error":{"code":"DENIED","message":"no"}}`))
	f.Add([]byte(`{"v":1,"id":"x","type":"progress","payload":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnvelope(b)
		if err != nil {
			return
		}
		if e.V != Version || e.ID == "" {
			t.Fatalf("accepted an invalid envelope: %+v", e)
		}
		if e.Type == TypeRequest && (e.NS == "" || e.Op == "") {
			t.Fatalf("accepted a request without ns/op")
		}
		if _, err := EncodeEnvelope(e); err != nil && len(b) < MaxFrame {
			t.Fatalf("a decoded envelope does not encode: %v", err)
		}
	})
}
