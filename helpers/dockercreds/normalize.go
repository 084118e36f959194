package dockercreds

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// DockerHub is the key the docker CLI files Docker Hub credentials under,
// whichever of its host names a client used.
const DockerHub = "https://index.docker.io/v1/"

// maxServerURL bounds what a guest may send; real registry addresses are far
// shorter, and a bound keeps a hostile guest from making us chew on megabytes.
const maxServerURL = 1024

// hubHosts are the names Docker Hub answers to.
var hubHosts = map[string]bool{
	"docker.io":            true,
	"index.docker.io":      true,
	"registry-1.docker.io": true,
}

// Normalize turns a server URL as a docker client spells it into the key the
// docker CLI stores credentials under: the scheme, path and trailing slashes
// go, the host is lowercased, a port stays, and every name of Docker Hub
// becomes DockerHub. The result of Normalize is a fixed point of it.
func Normalize(serverURL string) (string, error) {
	s := strings.TrimSpace(serverURL)
	if s == "" {
		return "", errors.New("dockercreds: empty registry address")
	}
	if len(s) > maxServerURL {
		return "", fmt.Errorf("dockercreds: registry address longer than %d bytes", maxServerURL)
	}
	for _, scheme := range []string{"https://", "http://"} {
		if len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) {
			s = s[len(scheme):]
			break
		}
	}
	if strings.Contains(s, "://") {
		return "", fmt.Errorf("dockercreds: registry address %.80q: only http and https schemes name a registry", serverURL)
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	hostport, err := canonicalHostPort(strings.ToLower(s))
	if err != nil {
		return "", fmt.Errorf("dockercreds: registry address %.80q: %w", serverURL, err)
	}
	if hubHosts[hostport] {
		return DockerHub, nil
	}
	return hostport, nil
}

// canonicalHostPort checks a lowercased host[:port] and spells the port
// without leading zeros.
func canonicalHostPort(s string) (string, error) {
	if s == "" {
		return "", errors.New("no host")
	}
	var host, port string
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", errors.New("unterminated IPv6 address")
		}
		addr, err := netip.ParseAddr(s[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return "", errors.New("bad IPv6 address")
		}
		host = "[" + addr.String() + "]"
		rest := s[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return "", errors.New("junk after IPv6 address")
			}
			port = rest[1:]
		}
	} else {
		h, p, hasPort := strings.Cut(s, ":")
		if err := checkHostName(h); err != nil {
			return "", err
		}
		host = h
		if hasPort {
			port = p
		}
	}
	if port == "" && strings.HasSuffix(s, ":") {
		return "", errors.New("empty port")
	}
	if port == "" {
		return host, nil
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 || strings.HasPrefix(port, "+") {
		return "", fmt.Errorf("bad port %.10q", port)
	}
	return host + ":" + strconv.FormatUint(n, 10), nil
}

// checkHostName accepts DNS names (underscores allowed, as registries in the
// wild use them) and IPv4 addresses; it refuses whatever a helper on the host
// should never be asked about.
func checkHostName(h string) error {
	if h == "" {
		return errors.New("no host")
	}
	if len(h) > 253 {
		return errors.New("host name longer than 253 bytes")
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("bad host name %.80q", h)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("bad host name %.80q", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("bad character in host name %.80q", h)
			}
		}
	}
	return nil
}
