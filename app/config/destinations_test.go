package config

import "testing"

func TestHostMatch(t *testing.T) {
	for _, c := range []struct {
		pat, name string
		want      bool
	}{
		{"github.com", "github.com", true},
		{"github.com", "GitHub.com", true},
		{"github.com", "github.com.evil", false},
		{"github.com", "evilgithub.com", false},
		{"*.corp.example", "git.corp.example", true},
		{"*.corp.example", "corp.example", false},
		{"*.corp.example", "a.b.corp.example", true},
		{"*.corp.example", "corp.example.evil", false},
		{"[10.0.0.5]:2222", "[10.0.0.5]:2222", true},
		{"[10.0.0.5]:2222", "10.0.0.5", false},
		{"10.0.0.?", "10.0.0.5", true},
		{"10.0.0.?", "10.0.0.55", false},
		{"*", "anything", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
	} {
		if got := MatchDestination([]string{c.pat}, []string{c.name}); got != c.want {
			t.Errorf("%q matches %q: %v, want %v", c.pat, c.name, got, c.want)
		}
	}
}
