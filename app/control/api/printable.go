package api

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable makes text that a shed chose (its guest version, a request's
// namespace and operation, an error it sent, anything in an audit line) safe
// to show on a terminal or in the tray: every C0 and C1 control (ESC, and
// with it every escape sequence, CR, LF, tab, BEL), DEL, every format
// character (bidi overrides and isolates, zero-width characters) and the
// Unicode line and paragraph separators become a visible Go escape such as
// \x1b or \u202e, and invalid UTF-8 becomes U+FFFD. Plain text comes back
// unchanged. JSON output must not use it: --json stays exact.
func Printable(s string) string {
	if isPrintable(s) {
		return s
	}
	var b strings.Builder
	for i, w := 0, 0; i < len(s); i += w {
		r, n := utf8.DecodeRuneInString(s[i:])
		w = n
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteRune(utf8.RuneError)
		case unsafeRune(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return utf8.ValidString(s) && !strings.ContainsFunc(s, unsafeRune)
		}
	}
	return true
}

func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}
