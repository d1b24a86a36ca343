package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzOutput: whatever a value holds, clean leaves nothing a terminal acts
// on and no line break, termWriter leaves nothing a terminal acts on but
// newline and tab, and JSON written through termWriter is still JSON that
// decodes to the value.
func FuzzOutput(f *testing.F) {
	f.Add(hostile)
	f.Add("plain greeter")
	f.Add("\xff\xfe tab\there \u0085 \u200f \u2028")
	f.Fuzz(func(t *testing.T, s string) {
		odd := func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }
		c := clean(s)
		if strings.ContainsFunc(c, odd) || !utf8.ValidString(c) {
			t.Fatalf("clean(%q) = %q", s, c)
		}
		if !strings.ContainsFunc(s, func(r rune) bool { return r == utf8.RuneError || !isPrint(r) }) && c != s {
			t.Fatalf("clean changed a printable %q to %q", s, c)
		}
		var buf bytes.Buffer
		w := termWriter{&buf}
		if err := printf(w, "%s\t%s\n", s, s); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(map[string]string{s: s})
		if err != nil {
			t.Fatal(err)
		}
		var jsonOut bytes.Buffer
		if _, err := (termWriter{&jsonOut}).Write(b); err != nil {
			t.Fatal(err)
		}
		buf.Write(jsonOut.Bytes())
		if strings.ContainsFunc(buf.String(), func(r rune) bool { return r != '\n' && r != '\t' && odd(r) }) || !utf8.Valid(buf.Bytes()) {
			t.Fatalf("termWriter let through: %q", buf.String())
		}
		var back map[string]string
		if err := json.Unmarshal(jsonOut.Bytes(), &back); err != nil {
			t.Fatalf("JSON through termWriter: %v: %q", err, jsonOut.String())
		}
		want := strings.Map(func(r rune) rune { return r }, s) // as json.Marshal: U+FFFD per invalid byte
		if back[want] != want {
			t.Fatalf("JSON through termWriter decodes to %q, want %q", back, want)
		}
	})
}
