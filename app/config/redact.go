package config

import (
	"net/url"
	"regexp"
)

// urlUserinfo matches the userinfo of a URL anywhere in a text: a scheme,
// "://", then everything up to the last '@' before the host's end.
var urlUserinfo = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s"'<>@]*@`)

// RedactURLs replaces the userinfo of every URL in s (user, or user and
// password) with REDACTED. Configured URLs may not carry userinfo, but text
// from an SDK, an HTTP client or a credential helper can still spell a URL
// out; whatever leaves the host's process (an error to a shed, a log line,
// status) passes through here first.
func RedactURLs(s string) string {
	return urlUserinfo.ReplaceAllString(s, "${1}REDACTED@")
}

// hasUserinfo reports whether a configured address carries a user or a
// password: "scheme://user:pass@host" and the scheme-less "user:pass@host".
func hasUserinfo(s string) bool {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return true
	}
	if u, err := url.Parse("x://" + s); err == nil && u.User != nil {
		return true
	}
	return urlUserinfo.MatchString(s)
}
