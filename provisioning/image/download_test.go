package image

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func serve(t *testing.T, disk []byte, sum string, cut bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/images/SHA512SUMS":
			fmt.Fprintf(w, "%s  other.qcow2\n%s  shed.qcow2\n", strings.Repeat("0", 128), sum)
		case "/images/shed.qcow2":
			w.Header().Set("Content-Length", fmt.Sprint(len(disk)))
			if cut {
				w.Write(disk[:len(disk)/2])
				panic(http.ErrAbortHandler) // the connection drops mid-body
			}
			w.Write(disk)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func published(srv *httptest.Server) Published {
	return Published{Name: "debian-12", Arch: "amd64", URL: srv.URL + "/images/shed.qcow2", SumsURL: srv.URL + "/images/SHA512SUMS"}
}

func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestDownloadVerifiesThePublishedSHA512(t *testing.T) {
	disk := []byte(strings.Repeat("a small fake qcow2 ", 50000))
	s := sha512.Sum512(disk)
	sum := hex.EncodeToString(s[:])
	c := Cache{Dir: t.TempDir()}

	srv := serve(t, disk, sum, false)
	var last, total int64
	img, err := c.Download(context.Background(), srv.Client(), published(srv), func(d, n int64) { last, total = d, n })
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(img.Disk)
	if err != nil || string(got) != string(disk) {
		t.Fatalf("disk: %v (%d bytes)", err, len(got))
	}
	if last != int64(len(disk)) || total != int64(len(disk)) {
		t.Fatalf("progress ended at %d/%d", last, total)
	}
	if !strings.HasSuffix(img.Dir, "debian-12-amd64-"+sum[:16]) {
		t.Fatalf("not addressed by its SHA-512: %s", img.Dir)
	}
	srv.Close()
	// The second call fetches only the sums: this server has no image.
	srv2 := serve(t, nil, sum, false)
	if img2, err := c.Download(context.Background(), srv2.Client(), published(srv2), nil); err != nil || img2.Disk != img.Disk {
		t.Fatalf("second download: %+v %v", img2, err)
	}
}

func TestDownloadWithABadChecksumOrACutLeavesNothing(t *testing.T) {
	disk := []byte(strings.Repeat("x", 300000))
	s := sha512.Sum512(disk)
	good := hex.EncodeToString(s[:])
	bad := strings.Repeat("ab", 64)
	for _, c := range []struct {
		name string
		sum  string
		cut  bool
		want string
	}{
		{"bad checksum", bad, false, "does not match"},
		{"cut mid-body", good, true, "GET"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cache := Cache{Dir: t.TempDir()}
			srv := serve(t, disk, c.sum, c.cut)
			_, err := cache.Download(context.Background(), srv.Client(), published(srv), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if l := leftovers(t, cache.Dir); len(l) != 0 {
				t.Fatalf("left behind: %v", l)
			}
		})
	}
}
