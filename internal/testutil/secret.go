package testutil

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
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
