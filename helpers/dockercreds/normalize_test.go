package dockercreds_test

import (
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/helpers/dockercreds"
)

func TestNormalize(t *testing.T) {
	ok := []struct{ in, want string }{
		{"docker.io", dockercreds.DockerHub},
		{"index.docker.io", dockercreds.DockerHub},
		{"registry-1.docker.io", dockercreds.DockerHub},
		{"https://index.docker.io/v1/", dockercreds.DockerHub},
		{"https://index.docker.io/v2/", dockercreds.DockerHub},
		{"HTTPS://Docker.IO/", dockercreds.DockerHub},
		{"  https://registry-1.docker.io  ", dockercreds.DockerHub},
		{"ghcr.io", "ghcr.io"},
		{"https://ghcr.io/", "ghcr.io"},
		{"https://ghcr.io/v2/owner/repo", "ghcr.io"},
		{"GHCR.io", "ghcr.io"},
		{"http://127.0.0.1:5000", "127.0.0.1:5000"},
		{"127.0.0.1:5000/", "127.0.0.1:5000"},
		{"localhost:05000", "localhost:5000"},
		{"registry.example.com:443", "registry.example.com:443"},
		{"[::1]:5000", "[::1]:5000"},
		{"https://[0:0::1]:5000/v2/", "[::1]:5000"},
		{"docker.io:5000", "docker.io:5000"},
		{"my_registry.internal", "my_registry.internal"},
		{"ghcr.io?x=y", "ghcr.io"},
	}
	for _, c := range ok {
		got, err := dockercreds.Normalize(c.in)
		if err != nil || got != c.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	bad := []string{
		"", "   ", "https://", "/v2/", "ftp://ghcr.io", "unix:///run/x.sock", "ghcr.io:", "ghcr.io:0",
		"ghcr.io:65536", "ghcr.io:+5", "ghcr.io:http", "a..b", ".ghcr.io", "-a.io", "a-.io",
		"user@ghcr.io", "user:pw@ghcr.io", "ghcr io", "ghcr.io\x00", "[::1", "[::1]x", "[fe80::1%eth0]:5000",
		"[1.2.3.4]:80", "a:b:c", strings.Repeat("a", 64) + ".io", strings.Repeat("a.", 130) + "io",
		strings.Repeat("x", 2000), "héllo.io",
	}
	for _, in := range bad {
		if got, err := dockercreds.Normalize(in); err == nil {
			t.Errorf("Normalize(%q) = %q, want an error", in, got)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"docker.io", "https://index.docker.io/v1/", "127.0.0.1:5000", "[::1]:443", "HTTP://A.B:01/c",
		"ghcr.io/", "a_b.c", "x:y", "https://[::ffff:1.2.3.4]:1/", "\t ghcr.io \n", "ftp://x", "ghcr.io#frag",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := dockercreds.Normalize(in)
		if err != nil {
			if got != "" {
				t.Fatalf("error with a result %q", got)
			}
			return
		}
		again, err := dockercreds.Normalize(got)
		if err != nil || again != got {
			t.Fatalf("Normalize(%q) = %q is not a fixed point: %q, %v", in, got, again, err)
		}
		if got == dockercreds.DockerHub {
			return
		}
		if strings.ContainsAny(got, "/?#@ \t\r\n\x00") || got != strings.ToLower(got) {
			t.Fatalf("Normalize(%q) = %q is not a bare lowercase host[:port]", in, got)
		}
		if len(got) > 300 {
			t.Fatalf("Normalize(%q) = %d bytes", in, len(got))
		}
	})
}
