package registry

import (
	"strconv"
	"unicode/utf8"
)

// MaxQuoteLen is how many bytes of an input Quote shows.
const MaxQuoteLen = 80

// Quote returns s for an error or log message: Go-quoted (control
// characters, invalid UTF-8 and runes that do not print are escaped), and
// when s is longer than MaxQuoteLen bytes, only its first MaxQuoteLen
// bytes (cut at a rune boundary) followed by "... (N bytes)". Every error
// of regchain that quotes input — a name, a key, a version, an endpoint,
// what a file or a server holds — quotes it with Quote, so that a hostile
// input can neither flood a log with its size nor put raw escape sequences
// on an operator's terminal. Backends written outside regchain may use it
// for the same reason.
func Quote(s string) string {
	if len(s) <= MaxQuoteLen {
		return strconv.Quote(s)
	}
	n := MaxQuoteLen
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return strconv.Quote(s[:n]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}

// Clip returns s as it is when it is at most MaxQuoteLen bytes and prints
// as it is, else Quote(s): for log attributes (the handler quotes what
// needs quoting) and messages that show well-formed values bare.
func Clip(s string) string {
	if len(s) > MaxQuoteLen {
		return Quote(s)
	}
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			return Quote(s)
		}
	}
	return s
}
