package child

import (
	"bytes"
	"testing"
)

// The child relays what a cloud API answered: whatever it writes, the
// parent neither panics nor takes a step line for the answer.
func FuzzReadAnswer(f *testing.F) {
	f.Add([]byte(`{"step":"asking the API"}` + "\n" + `{"done":true,"machine":{"id":"1","state":"running"}}` + "\n"))
	f.Add([]byte(`{"done":true,"error":{"message":"gone","kind":"not_found"}}`))
	f.Add([]byte("not json\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		steps := 0
		a, _ := readAnswer(bytes.NewReader(b), func(string) { steps++ })
		if a != nil && !a.Done {
			t.Fatalf("an answer without done: %+v", a)
		}
		if n := bytes.Count(b, []byte("\n")) + 1; steps > n {
			t.Fatalf("%d steps from %d lines", steps, n)
		}
		if a != nil && a.Error != nil && a.Error.err() == nil {
			t.Fatalf("an answer's error %+v came back as no error", a.Error)
		}
	})
}
