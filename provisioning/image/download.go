package image

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
)

// Published is a cloud image its distribution publishes beside a
// SHA512SUMS file (what a Mac without mmdebstrap boots).
type Published struct {
	Name string // e.g. debian-12
	Arch string
	// URL of the disk image; its last path element is the name
	// SHA512SUMS lists it under.
	URL     string
	SumsURL string
}

// BytesProgress reports a download's bytes so far and the total (-1 when
// the server did not say).
type BytesProgress func(done, total int64)

// maxSums caps the checksum file a server may send.
const maxSums = 1 << 20

// Download returns the published image from the cache, fetching it first
// when absent. The cache folder is named by the image's published SHA-512,
// so a new release is a new entry; the disk is written to a temporary file
// hashed as it arrives and renamed into place only when it matches, so a
// failed, cut or wrong download leaves nothing behind.
func (c Cache) Download(ctx context.Context, client *http.Client, p Published, progress BytesProgress) (Image, error) {
	if client == nil {
		client = http.DefaultClient
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		return Image{}, fmt.Errorf("image: %w", err)
	}
	file := path.Base(u.Path)
	sums, err := get(ctx, client, p.SumsURL, maxSums)
	if err != nil {
		return Image{}, err
	}
	m, err := ParseSums(sums)
	if err != nil {
		return Image{}, err
	}
	want, ok := m[file]
	if !ok || len(want) != sha512.Size*2 {
		return Image{}, fmt.Errorf("image: %s lists no SHA-512 for %s", p.SumsURL, file)
	}
	dir := filepath.Join(c.Dir, p.Name+"-"+p.Arch+"-"+want[:16])
	img := Image{Name: p.Name, Arch: p.Arch, Dir: dir, Disk: filepath.Join(dir, DiskFile), DiskFormat: "qcow2"}
	if _, err := os.Stat(img.Disk); err == nil {
		return img, nil
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return Image{}, fmt.Errorf("image: %w", err)
	}
	tmp, err := os.MkdirTemp(c.Dir, ".download-"+p.Name+"-")
	if err != nil {
		return Image{}, fmt.Errorf("image: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := fetch(ctx, client, p.URL, filepath.Join(tmp, DiskFile), want, progress); err != nil {
		return Image{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "SHA512SUMS"), fmt.Appendf(nil, "%s  %s\n", want, DiskFile), 0o644); err != nil {
		return Image{}, fmt.Errorf("image: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(img.Disk); serr != nil {
			return Image{}, fmt.Errorf("image: %w", err)
		}
	}
	return img, nil
}

func request(ctx context.Context, client *http.Client, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("image: GET %s: %s", u, resp.Status)
	}
	return resp, nil
}

func get(ctx context.Context, client *http.Client, u string, max int64) ([]byte, error) {
	resp, err := request(ctx, client, u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("image: GET %s: %w", u, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("image: %s is larger than %d bytes", u, max)
	}
	return b, nil
}

func fetch(ctx context.Context, client *http.Client, u, dst, wantSHA512 string, progress BytesProgress) error {
	resp, err := request(ctx, client, u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer f.Close()
	h := sha512.New()
	var done int64
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				return fmt.Errorf("image: %w", err)
			}
			h.Write(buf[:n])
			done += int64(n)
			if progress != nil {
				progress(done, resp.ContentLength)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("image: GET %s: %w", u, rerr)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantSHA512 {
		return fmt.Errorf("image: %s does not match its published SHA-512", u)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return f.Close()
}
