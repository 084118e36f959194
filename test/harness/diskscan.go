package harness

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// A disk scan reads a shed's disk image on the host byte by byte: what a
// shed wrote lands in its overlay's clusters as is (QEMU never compresses
// or encrypts a cluster it writes), so a secret the shed stored is there to
// find, whatever the shed's filesystem did with it later.

// scanChunk is how much a scan reads at a time; scanOverlap is how far
// each read reaches back, the most a needle or a private key block spans.
var (
	scanChunk   = 8 << 20
	scanOverlap = 16 << 10
)

// Finding is one thing a scan found: what it is and where. It never holds
// the secret's value.
type Finding struct {
	What   string
	Offset int64
}

func (f Finding) String() string { return fmt.Sprintf("%s at offset %d", f.What, f.Offset) }

// DiskScan looks for secrets' values and for private keys. A private key
// block (PEM or OpenSSH, also indented as in YAML or with its newlines
// escaped as in JSON) is allowed only when its public half is one of
// Allowed; one that cannot be parsed is reported too.
type DiskScan struct {
	Secrets []Secret
	Allowed []ssh.PublicKey
}

// Bytes scans b.
func (s DiskScan) Bytes(b []byte) ([]Finding, error) {
	return s.scan(bytes.NewReader(b), 0)
}

// File scans the data of the file at path, skipping its holes (a raw
// image converted from a qcow2 is mostly holes).
func (s DiskScan) File(path string) ([]Finding, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	var out []Finding
	for off := int64(0); off < fi.Size(); {
		start, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data past off
		}
		if err != nil {
			start = off // no SEEK_DATA here: read it all
		}
		end, err := unix.Seek(int(f.Fd()), start, unix.SEEK_HOLE)
		if err != nil || end <= start {
			end = fi.Size()
		}
		got, err := s.scan(io.NewSectionReader(f, start, end-start), start)
		if err != nil {
			return nil, fmt.Errorf("harness: scanning %s: %w", path, err)
		}
		out = append(out, got...)
		off = end
	}
	return out, nil
}

func (s DiskScan) check() error {
	if len(s.Secrets) == 0 {
		return errors.New("harness: no secrets to scan for")
	}
	for _, sec := range s.Secrets {
		if len(sec.Value) == 0 {
			return fmt.Errorf("harness: the secret %q to scan for is empty", sec.What)
		}
		if len(sec.Value) > scanOverlap {
			return fmt.Errorf("harness: the secret %q is longer than a scan's overlap", sec.What)
		}
	}
	return nil
}

// scan reads r in overlapping windows; a match counts in the window where
// it starts before the overlap, so each is found once and never cut.
func (s DiskScan) scan(r io.Reader, base int64) ([]Finding, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var out []Finding
	buf := make([]byte, 0, scanChunk+scanOverlap)
	winStart := base // offset of buf[0]
	for {
		n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !eof {
			return nil, err
		}
		owned := len(buf)
		if !eof && owned > scanOverlap {
			owned -= scanOverlap
		}
		out = append(out, s.window(buf, owned, winStart)...)
		if eof {
			return out, nil
		}
		keep := copy(buf, buf[owned:])
		buf = buf[:keep]
		winStart += int64(owned)
	}
}

var (
	pemBegin = []byte("-----BEGIN ")
	pemEnd   = []byte("-----END ")
)

// window reports the matches in w that start before owned.
func (s DiskScan) window(w []byte, owned int, base int64) []Finding {
	var out []Finding
	for _, sec := range s.Secrets {
		for i := 0; ; {
			j := bytes.Index(w[i:], sec.Value)
			if j < 0 || i+j >= owned {
				break
			}
			out = append(out, Finding{What: sec.What, Offset: base + int64(i+j)})
			i += j + 1
		}
	}
	for i := 0; ; {
		j := bytes.Index(w[i:], pemBegin)
		if j < 0 || i+j >= owned {
			break
		}
		at := i + j
		i = at + 1
		head := w[at:min(len(w), at+80)]
		if nl := bytes.IndexAny(head, "\n\\"); nl >= 0 {
			head = head[:nl]
		}
		if !bytes.HasSuffix(bytes.TrimRight(head, "\r \""), []byte("PRIVATE KEY-----")) {
			continue
		}
		if what := s.privateKey(w[at:min(len(w), at+scanOverlap)]); what != "" {
			out = append(out, Finding{What: what, Offset: base + int64(at)})
		}
	}
	return out
}

// privateKey judges the private key block at the start of b: "" when it
// is one of the allowed keys, else what it is.
func (s DiskScan) privateKey(b []byte) string {
	typ := string(bytes.TrimSuffix(bytes.TrimPrefix(bytes.SplitN(b, []byte("-----"), 3)[1], []byte("BEGIN ")), []byte(" ")))
	end := bytes.Index(b, pemEnd)
	if end < 0 {
		return "a cut " + typ + " block (no END line)"
	}
	if e := bytes.Index(b[end+len(pemEnd):], []byte("-----")); e >= 0 {
		b = b[:end+len(pemEnd)+e+5]
	} else {
		return "a cut " + typ + " block"
	}
	// Undo JSON's escaped newlines and YAML's indentation.
	text := strings.ReplaceAll(string(b), `\n`, "\n")
	var norm strings.Builder
	for _, l := range strings.Split(text, "\n") {
		norm.WriteString(strings.Trim(l, " \t\r\"") + "\n")
	}
	blk, _ := pem.Decode([]byte(norm.String()))
	if blk == nil {
		return "an unparseable " + typ + " block"
	}
	pub, err := publicOf(pem.EncodeToMemory(blk))
	if err != nil {
		return "an unparseable " + typ + " block"
	}
	for _, a := range s.Allowed {
		if bytes.Equal(a.Marshal(), pub.Marshal()) {
			return ""
		}
	}
	return fmt.Sprintf("a private key (%s %s) that is not the shed's", pub.Type(), ssh.FingerprintSHA256(pub))
}

func publicOf(pemBytes []byte) (ssh.PublicKey, error) {
	k, err := ssh.ParseRawPrivateKey(pemBytes)
	var pm *ssh.PassphraseMissingError
	if errors.As(err, &pm) && pm.PublicKey != nil {
		return pm.PublicKey, nil
	}
	if err != nil {
		return nil, err
	}
	sg, err := ssh.NewSignerFromKey(k)
	if err != nil {
		return nil, err
	}
	return sg.PublicKey(), nil
}

// PrivateKeySecrets are the needles of a private key file: the lines of
// its base64 body but the first (OpenSSH's is the same in every key of a
// kind) and those the public key also has, and its raw secret numbers,
// which a program may have stored decoded.
func PrivateKeySecrets(what string, pemBytes []byte) ([]Secret, error) {
	k, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("harness: %s: %w", what, err)
	}
	pub, err := publicOf(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("harness: %s: %w", what, err)
	}
	public := string(ssh.MarshalAuthorizedKey(pub))
	var out []Secret
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, fmt.Errorf("harness: %s is not PEM", what)
	}
	lines := strings.Split(string(pem.EncodeToMemory(&pem.Block{Type: blk.Type, Bytes: blk.Bytes})), "\n")
	for i, l := range lines {
		if i < 2 || strings.HasPrefix(l, "-----") || len(l) < 24 || strings.Contains(public, l) {
			continue // the BEGIN line, the header line, the END line, short tails
		}
		out = append(out, Secret{What: what + " (a line of its base64 body)", Value: []byte(l)})
	}
	raw := func(b []byte) { out = append(out, Secret{What: what + " (raw)", Value: b}) }
	switch k := k.(type) {
	case *ed25519.PrivateKey:
		raw(k.Seed())
	case ed25519.PrivateKey:
		raw(k.Seed())
	case *rsa.PrivateKey:
		raw(k.D.Bytes())
		for _, p := range k.Primes {
			raw(p.Bytes())
		}
	case *ecdsa.PrivateKey:
		b, err := k.Bytes()
		if err != nil {
			return nil, fmt.Errorf("harness: %s: %w", what, err)
		}
		raw(b)
	default:
		return nil, fmt.Errorf("harness: %s: a %T key", what, k)
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("harness: %s has no body", what)
	}
	return out, nil
}
