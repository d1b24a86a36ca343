package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What regctl prints comes from registries, files and servers that may be
// hostile: nothing of it reaches the terminal raw. Two mechanisms:
//
//   - printf, with which every line of text output is written, escapes its
//     string arguments (clean): a name, a source, an error read from a
//     server cannot break a line, a table or the terminal.
//   - stdout and stderr are termWriters (run wraps them): whatever is
//     written anyway — JSON, error messages, logs — has the characters a
//     terminal acts on escaped.

// termWriter escapes, in everything written through it, the characters a
// terminal acts on: C0 controls but newline and tab, DEL and C1 controls
// (\u00XX), bidirectional controls (\u202e, ...) and bytes that are not
// UTF-8 (\xXX). JSON stays valid JSON: the characters escaped as \u00XX
// can only appear in it inside strings (json.Marshal output never holds
// invalid UTF-8 or C0 controls), where the escape means the same
// character. Write reports len(p) on success.
type termWriter struct{ w io.Writer }

func (t termWriter) Write(p []byte) (int, error) {
	var out []byte
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			out = fmt.Appendf(out, `\x%02x`, p[i])
		case r == '\n' || r == '\t':
			out = append(out, byte(r))
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r):
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, p[i:i+size]...)
		}
		i += size
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// clean returns s with every rune that does not print as itself — control
// characters (newline and tab too), bidirectional controls, other
// non-printing runes — and every byte that is not UTF-8 escaped as Go
// escapes them, for one cell or field of text output.
func clean(s string) string {
	odd := func(r rune) bool { return r == utf8.RuneError || !isPrint(r) }
	if !strings.ContainsFunc(s, odd) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case odd(r):
			q := strconv.QuoteRune(r) // 'x' with x escaped
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// printf is fmt.Fprintf with every string and fmt.Stringer argument
// cleaned: for text output, whose values come from outside.
func printf(w io.Writer, format string, args ...any) error {
	for i, a := range args {
		switch v := a.(type) {
		case string:
			args[i] = clean(v)
		case fmt.Stringer:
			args[i] = clean(v.String())
		}
	}
	_, err := fmt.Fprintf(w, format, args...)
	return err
}

// isPrint reports whether r prints as itself: strconv.IsPrint, which
// excludes every control and format character (bidirectional controls
// included).
func isPrint(r rune) bool { return strconv.IsPrint(r) }
