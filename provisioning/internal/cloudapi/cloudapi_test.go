package cloudapi

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/provisioning"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"999999999999", 0, false},
	} {
		got, ok := ParseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSSHSourcesAndAddr(t *testing.T) {
	s, err := SSHSources(nil)
	if err != nil || len(s) != 2 || s[0].String() != "0.0.0.0/0" || s[1].String() != "::/0" {
		t.Errorf("SSHSources(nil) = %v, %v", s, err)
	}
	s, err = SSHSources([]string{"192.0.2.77/24"})
	if err != nil || s[0] != netip.MustParsePrefix("192.0.2.0/24") {
		t.Errorf("SSHSources = %v, %v", s, err)
	}
	if _, err := SSHSources([]string{"nope"}); err == nil {
		t.Error("a bad CIDR was taken")
	}
	for in, want := range map[string]string{"203.0.113.5": "203.0.113.5:22", "2001:db8::1": "", "": "", "0.0.0.0": "", "x": ""} {
		if got := SSHAddr(in); got != want {
			t.Errorf("SSHAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckUserData(t *testing.T) {
	if err := CheckUserData([]byte("#cloud-config\n"), 100, "X", "tok"); err != nil {
		t.Error(err)
	}
	if err := CheckUserData(nil, 100, "X", "tok"); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty user-data: %v", err)
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, s := range []string{"1", "120", "", "Tue, 01 Dec 2026 10:01:00 GMT", "-5", "1e3", "Mon, 02 Jan 2006 15:04:05 MST"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now)
		if !ok && d != 0 {
			t.Fatalf("not ok but %s", d)
		}
		if d < 0 || d > 24*time.Hour {
			t.Fatalf("ParseRetryAfter(%q) = %s, outside [0, 24h]", s, d)
		}
	})
}

func FuzzParseReset(f *testing.F) {
	for _, s := range []string{"1764583200", "0", "", "-1", "99999999999999999999", " 12 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		at, ok := ParseReset(s)
		if ok && (at.Unix() <= 0 || at.Unix() > 1<<40) {
			t.Fatalf("ParseReset(%q) = %v", s, at)
		}
		if !ok && !at.IsZero() {
			t.Fatalf("not ok but %v", at)
		}
	})
}

// The test-only overrides work only beside the API URL override, so a
// real account always gets the provider's create limit and port 22.
func TestTestOverrides(t *testing.T) {
	const u = "SPUFF_X_API_URL"
	for _, tc := range []struct {
		env  map[string]string
		want Overrides
		err  string
	}{
		{env: map[string]string{}},
		{env: map[string]string{u: "http://127.0.0.1:1/", "SPUFF_X_READY_TIMEOUT": "3s", "SPUFF_X_SSH_PORT": "2222"}, want: Overrides{ReadyTimeout: 3 * time.Second, SSHPort: "2222"}},
		{env: map[string]string{"SPUFF_X_SSH_PORT": "2222"}, err: "need SPUFF_X_API_URL"},
		{env: map[string]string{"SPUFF_X_READY_TIMEOUT": "3s"}, err: "need SPUFF_X_API_URL"},
		{env: map[string]string{u: "http://127.0.0.1:1/", "SPUFF_X_READY_TIMEOUT": "soon"}, err: "not a duration"},
		{env: map[string]string{u: "http://127.0.0.1:1/", "SPUFF_X_SSH_PORT": "70000"}, err: "not a port"},
	} {
		got, err := TestOverrides(func(k string) string { return tc.env[k] }, u)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: err %v, want %q", tc.env, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v, %v; want %+v", tc.env, got, err, tc.want)
		}
	}
	o := Overrides{SSHPort: "2222"}
	if m := o.Addr(provisioning.Machine{SSHAddr: "127.0.0.1:22"}); m.SSHAddr != "127.0.0.1:2222" {
		t.Errorf("Addr = %q", m.SSHAddr)
	}
	if m := o.Addr(provisioning.Machine{}); m.SSHAddr != "" {
		t.Errorf("Addr of a machine with no address = %q", m.SSHAddr)
	}
	if p := Poll(5*time.Second, 3*time.Second); p != 300*time.Millisecond {
		t.Errorf("Poll = %s", p)
	}
}

// A create and a sweep refuse the same labels: what a create may tag, a
// sweep can find again by the same labels.
func TestCheckAndCheckSweepTakeTheSameLabels(t *testing.T) {
	for _, tc := range []struct {
		what   string
		name   string
		labels map[string]string
		ok     bool
	}{
		{"a shed's labels", "demo", provisioning.Labels("demo", "alice-laptop"), true},
		{"a bad name", "-demo", provisioning.Labels("-demo", "alice-laptop"), false},
		{"another shed's name", "demo", provisioning.Labels("other", "alice-laptop"), false},
		{"no name label", "demo", map[string]string{provisioning.OwnerLabel: "alice-laptop"}, false},
		{"an owner no API takes", "demo", provisioning.Labels("demo", "alice laptop"), false},
		{"an empty value", "demo", map[string]string{provisioning.Label: "demo", "x": ""}, false},
	} {
		_, cerr := Check(provisioning.CreateRequest{Name: tc.name, Labels: tc.labels, UserData: []byte("#cloud-config\n")}, 1<<10, "Cloud", "tok", nil)
		_, serr := CheckSweep(provisioning.SweepRequest{Name: tc.name, Labels: tc.labels})
		if (cerr == nil) != tc.ok || (serr == nil) != tc.ok {
			t.Errorf("%s: Check says %v, CheckSweep says %v; want ok=%v from both", tc.what, cerr, serr, tc.ok)
		}
	}
}
