package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadFilters(t *testing.T) {
	var buf bytes.Buffer
	for _, r := range []Record{
		{TS: ts, Shed: "a", NS: "ssh-agent", Result: "ok"},
		{TS: ts.Add(time.Hour), Shed: "b", NS: "ssh-agent", Result: "denied"},
		{TS: ts.Add(2 * time.Hour), Shed: "a", NS: "aws-credentials", Result: "ok"},
	} {
		b, _ := json.Marshal(r)
		buf.Write(append(b, '\n'))
	}
	// Torn, foreign and overlong lines are skipped; the read goes on.
	buf.WriteString("not json\n{\"ts\":\"bad\"}\n\n{\"ts\":\"2026-03-31T15")
	buf.WriteString("\n" + `{"ts":"2026-03-31T15:04:05Z","shed":"` + strings.Repeat("x", 3*maxRead) + `"}` + "\n")
	buf.WriteString(`{"ts":"2026-03-31T18:04:05Z","shed":"c","ns":"docker-credentials","op":"get","result":"error","detail":"","approval":"none","future":{"x":[1]}}` + "\n")
	buf.WriteString(`{"ts":"2026-03-31T19:04:05Z","shed":"d","result":"ok"}`) // no final newline
	count := func(f Filter) int {
		n := 0
		if err := Read(bytes.NewReader(buf.Bytes()), f, func(Record) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for f, want := range map[Filter]int{
		{}:                                5,
		{Shed: "a"}:                       2,
		{Shed: "c"}:                       1, // an unknown field is tolerated
		{NS: "ssh-agent"}:                 2,
		{Result: "denied"}:                1,
		{Result: "error"}:                 1,
		{Since: ts.Add(time.Minute)}:      4,
		{Since: ts.Truncate(time.Second)}: 5,
		{Shed: "a", NS: "ssh-agent"}:      1,
		{Shed: "a", Result: "denied"}:     0,
		{Shed: "nobody"}:                  0,
	} {
		if got := count(f); got != want {
			t.Errorf("%+v matched %d, want %d", f, got, want)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := Read(bytes.NewReader(buf.Bytes()), Filter{}, func(Record) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("callback error: got %v after %d records", err, n)
	}
}

// follower runs Follow in the background and hands over the sheds it sees.
func follower(t *testing.T, p string, f Filter) (<-chan string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, p, f, func(r Record) error { got <- r.Shed; return nil }) }()
	time.Sleep(2 * followPoll) // let it open the file and seek to its end
	return got, func() error { cancel(); return <-done }
}

func expect(t *testing.T, got <-chan string, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case s := <-got:
			if s != w {
				t.Fatalf("followed %q, want %q", s, w)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("follow did not see %q", w)
		}
	}
	select {
	case s := <-got:
		t.Fatalf("unexpected record %q", s)
	case <-time.After(2 * followPoll):
	}
}

func appendLine(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func rec(shed, ns string) string {
	b, _ := json.Marshal(Record{TS: ts, Shed: shed, NS: ns, Result: "ok"})
	return string(b) + "\n"
}

// TestCheckRefusesAResultNoLineHas: the results a line can carry pass,
// and a mistyped one is refused with the ones there are.
func TestCheckRefusesAResultNoLineHas(t *testing.T) {
	for _, r := range []string{"", ResultOK, ResultDenied, ResultError} {
		if err := (Filter{Result: r}).Check(); err != nil {
			t.Errorf("result %q: %v", r, err)
		}
	}
	for _, r := range []string{"failed", "OK", "ok ", "denied,error"} {
		err := (Filter{Result: r}).Check()
		if err == nil || !strings.Contains(err.Error(), "ok, denied or error") {
			t.Errorf("result %q: got %v, want a refusal naming the results there are", r, err)
		}
	}
}

func TestFollowSeesNewLinesAndRotation(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	w, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Write(context.Background(), Record{TS: ts, Shed: "old", NS: "x"})
	got, stop := follower(t, p, Filter{NS: "x"})
	_ = w.Write(context.Background(), Record{TS: ts, Shed: "new", NS: "x"})
	_ = w.Write(context.Background(), Record{TS: ts, Shed: "filtered", NS: "y"})
	expect(t, got, "new") // "old" was there before: tail starts at the end
	w.Close()

	// Rotation: a new file at the same path is read from its start.
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * followPoll)
	w2, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	_ = w2.Write(context.Background(), Record{TS: ts, Shed: "rotated", NS: "x"})
	expect(t, got, "rotated")

	// A line arriving in two pieces is seen once, whole.
	line := rec("split", "x")
	appendLine(t, p, line[:10])
	time.Sleep(2 * followPoll)
	appendLine(t, p, line[10:])
	expect(t, got, "split")

	// Truncation: the file is read again from its start.
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * followPoll)
	appendLine(t, p, rec("after-truncate", "x"))
	expect(t, got, "after-truncate")

	if err := stop(); err != nil {
		t.Fatalf("follow ended with %v", err)
	}
}

func TestFollowWaitsForTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "later.log")
	got, stop := follower(t, p, Filter{})
	appendLine(t, p, rec("first", "x")+rec("second", "x"))
	expect(t, got, "first", "second")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestFollowReturnsCallbackError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	appendLine(t, p, "")
	boom := errors.New("client gone")
	done := make(chan error, 1)
	go func() {
		done <- Follow(context.Background(), p, Filter{}, func(Record) error { return boom })
	}()
	time.Sleep(2 * followPoll)
	appendLine(t, p, rec("x", "x"))
	select {
	case err := <-done:
		if err != boom {
			t.Fatalf("follow returned %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("follow did not stop on the callback's error")
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"ts":"2026-03-31T15:04:05Z","shed":"s","ns":"n","op":"o","result":"ok","detail":"","approval":"none"}` + "\n"))
	f.Add([]byte(`{"ts":"2026-03-31T15:04:05Z","shed":"s\n","extra":[1,{}],"id":"x","code":"DENIED"}`))
	f.Add([]byte(`{"ts":"2026-03-31T15:04:05Z","shed":"s","code":"RATE_LIMITED","count":3,"ids":["a"],"id_range":["a","c"]}` + "\n"))
	f.Add([]byte("garbage\n\n{"))
	f.Add([]byte(`{"ts":"2026-03-31T15:04:05+02:00","detail":"\u0000\u2028"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		_ = Read(bytes.NewReader(b), Filter{}, func(r Record) error {
			n++
			line, err := r.line()
			if err != nil {
				return nil // a foreign line too big for the writer
			}
			if bytes.Count(line, []byte("\n")) != 1 {
				t.Fatalf("a record read back encodes to more than one line: %q", line)
			}
			var back Record
			if err := json.Unmarshal(line, &back); err != nil {
				t.Fatalf("re-encoded record does not read back: %v", err)
			}
			return nil
		})
		if n > bytes.Count(b, []byte("\n"))+1 {
			t.Fatalf("%d records from %d lines", n, bytes.Count(b, []byte("\n"))+1)
		}
	})
}
