package testutil

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// NoSecret fails the test if secret shows in v formatted by any fmt verb
// (%v, %+v, %#v, %s, %q, %x, %X, %d) or logged by slog's text or JSON
// handler. what names v in the failure.
func NoSecret(tb testing.TB, secret, what string, v any) {
	tb.Helper()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		if s := fmt.Sprintf(verb, v); strings.Contains(s, secret) {
			tb.Errorf("%s: %s shows the secret: %.300s", what, verb, s)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "v", v)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "v", v)
	if strings.Contains(buf.String(), secret) {
		tb.Errorf("%s: slog shows the secret: %.300s", what, buf.String())
	}
}

// MaxMessage is the longest error message SafeMessage accepts: errors
// quote input bounded (registry.Quote), so their size does not follow the
// input's.
const MaxMessage = 2048

// SafeMessage fails the test if msg, an error message about outside input,
// is longer than MaxMessage or holds a control character, a
// bidirectional control or invalid UTF-8.
func SafeMessage(tb testing.TB, what, msg string) {
	tb.Helper()
	if len(msg) > MaxMessage {
		tb.Errorf("%s: message is %d bytes, more than %d: %.200q...", what, len(msg), MaxMessage, msg)
	}
	if !utf8.ValidString(msg) {
		tb.Errorf("%s: message is not UTF-8: %.300q", what, msg)
	}
	if i := strings.IndexFunc(msg, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }); i >= 0 {
		tb.Errorf("%s: message holds a control character at byte %d: %.300q", what, i, msg)
	}
}
