package api

import (
	"strings"
	"testing"
	"unicode"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"spuff-guest 1.2.3":               "spuff-guest 1.2.3",
		"ghcr.io user:alice ✓ 日本":         "ghcr.io user:alice ✓ 日本",
		"v1\x1b]0;pwned\x07":              `v1\x1b]0;pwned\a`,
		"get\x1b[2K\r\x1b[1Aok":           `get\x1b[2K\r\x1b[1Aok`,
		"line\nforged audit line\t":       `line\nforged audit line\t`,
		"c1 \u009b2J and \x7f":            `c1 \u009b2J and \x7f`,
		"evil\u202etxt.exe \u2066x\u2069": `evil\u202etxt.exe \u2066x\u2069`,
		"zw\u200bsp\ufeff \u2028":         `zw\u200bsp\ufeff \u2028`,
		"bad \xff\xfe utf8":               "bad \ufffd\ufffd utf8",
		"":                                "",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"plain", "\x1b]0;t\x07", "\u202e", "\xff", "\u0085\u009b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Printable(s)
		for _, r := range out {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
				t.Fatalf("Printable(%q) = %q keeps %U", s, out, r)
			}
		}
		if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r >= 0x7f }) && out != s {
			t.Fatalf("plain ASCII %q changed to %q", s, out)
		}
		if Printable(out) != out {
			t.Fatalf("Printable is not idempotent on %q", s)
		}
	})
}
