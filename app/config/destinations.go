package config

import "strings"

// MatchDestination reports whether any known_hosts name of a server
// matches any pattern. Patterns are known_hosts host patterns: * and ?
// wildcards, a port as [host]:port, case-insensitive.
func MatchDestination(patterns, names []string) bool {
	for _, p := range patterns {
		for _, n := range names {
			if hostMatch(strings.ToLower(p), strings.ToLower(n)) {
				return true
			}
		}
	}
	return false
}

// hostMatch is OpenSSH's match_pattern: * matches any run, ? one character,
// everything else itself ([ and ] included, as in [host]:port).
func hostMatch(p, s string) bool {
	// Iterative wildcard matching with one backtrack point.
	var pi, si, star, mark = 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
