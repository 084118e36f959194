package daemon

import (
	"strings"
	"unicode"
)

// noticeText is a host notice as a terminal may show it: printable runes
// only (a control sequence could rewrite the user's screen), on one line,
// framed so it stands out from the user's own output.
func noticeText(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return ' '
		case r == unicode.ReplacementChar || !unicode.IsPrint(r):
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	return "\r\n*** " + strings.TrimSpace(s) + " ***\r\n"
}
