package admin_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/regchain/regchain/admin"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

// logBuffer is a slog sink safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// serve sends one request straight to h, from remote, and returns the
// recorder.
func serve(h http.Handler, method, target, remote string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.Host = "localhost:9901"
	req.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestDNSRebinding: a request whose Host names neither an IP address nor
// a configured name is refused, reads included. A page on evil.example,
// its name made to resolve to 127.0.0.1, used to freeze the chain and read
// the status: the request came from loopback, and its Origin matched its
// Host.
func TestDNSRebinding(t *testing.T) {
	f := newFixture(t)
	var logs logBuffer
	h := admin.New(f.c, admin.Config{Mutations: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	evil := []string{"Host", "evil.example:9901", "Origin", "http://evil.example:9901"}
	rec := serve(h, "POST", "/admin/freeze", "127.0.0.1:50000", evil...)
	if rec.Code != 403 || f.c.Frozen() || !strings.Contains(rec.Body.String(), "admin.Config.Hosts") {
		t.Errorf("rebinding freeze = %d %s (frozen %v), want 403 naming admin.Config.Hosts", rec.Code, rec.Body, f.c.Frozen())
	}
	if l := logs.take(); strings.Count(l, "mutation refused") != 1 || !strings.Contains(l, "evil.example") {
		t.Errorf("log = %q, want one refusal naming the host", l)
	}
	for _, path := range []string{"/admin/status", "/admin/", "/admin/readyz"} {
		if rec := serve(h, "GET", path, "127.0.0.1:50000", evil...); rec.Code != 403 || strings.Contains(rec.Body.String(), "greeter") {
			t.Errorf("rebinding GET %s = %d %.100s, want 403 without the status", path, rec.Code, rec.Body)
		}
	}
	// The names and addresses the handler is reached by.
	for _, host := range []string{"localhost:9901", "LOCALHOST.", "127.0.0.1:9901", "[::1]:9901", "10.0.0.7:9901", "", "[fe80::1%25eth0]:9901"} {
		if rec := serve(h, "GET", "/admin/livez", "127.0.0.1:50000", "Host", host); rec.Code != 200 {
			t.Errorf("Host %q: %d %s, want 200", host, rec.Code, rec.Body)
		}
	}
	named := admin.New(f.c, admin.Config{Hosts: []string{"Admin.Internal"}, Logger: quiet()})
	for host, want := range map[string]int{"admin.internal:9901": 200, "admin.internal.": 200, "10.0.0.7": 200, "localhost": 403, "evil.example": 403} {
		if rec := serve(named, "GET", "/admin/livez", "127.0.0.1:50000", "Host", host); rec.Code != want {
			t.Errorf("Hosts [Admin.Internal], Host %q: %d, want %d", host, rec.Code, want)
		}
	}
}

// TestSecurityHeaders: every answer forbids framing and sniffing, and its
// Content-Security-Policy allows exactly the page's own inline script and
// style sheet.
func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	h := admin.New(f.c, admin.Config{Mutations: true, Logger: quiet()})
	for _, c := range []struct{ method, path string }{
		{"GET", "/admin/"}, {"GET", "/admin/status"}, {"GET", "/admin/readyz"}, {"GET", "/admin/nope"},
		{"GET", "/admin/freeze"}, {"POST", "/admin/release"}, {"POST", "/admin/freeze"},
	} {
		rec := serve(h, c.method, c.path, "127.0.0.1:50000")
		hdr := rec.Header()
		if hdr.Get("X-Frame-Options") != "DENY" || hdr.Get("X-Content-Type-Options") != "nosniff" ||
			!strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			!strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("%s %s (%d): headers %v lack the security headers", c.method, c.path, rec.Code, hdr)
		}
	}
	rec := serve(h, "GET", "/admin/", "127.0.0.1:50000")
	page, csp := rec.Body.String(), rec.Header().Get("Content-Security-Policy")
	for _, tag := range []string{"script", "style"} {
		m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(page, -1)
		if len(m) != 1 {
			t.Fatalf("page has %d inline <%s> elements, want 1", len(m), tag)
		}
		sum := sha256.Sum256([]byte(m[0][1]))
		want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q does not allow the page's <%s> (%s)", csp, tag, want)
		}
	}
	for _, bad := range []string{" style=", " onclick=", "javascript:"} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q, which the CSP blocks", bad)
		}
	}
}

// TestRefusedMutationsLogged: every refused mutation is logged once, with
// the reason; they were not logged at all.
func TestRefusedMutationsLogged(t *testing.T) {
	f := newFixture(t)
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	off := admin.New(f.c, admin.Config{Logger: log})
	loop := admin.New(f.c, admin.Config{Mutations: true, Logger: log})
	tok := admin.New(f.c, admin.Config{Mutations: true, Token: "s3cret-tok", Logger: log})
	for _, c := range []struct {
		name   string
		h      http.Handler
		method string
		remote string
		hdr    []string
		reason string
	}{
		{"disabled", off, "POST", "127.0.0.1:1", nil, "mutations are disabled"},
		{"GET", loop, "GET", "127.0.0.1:1", nil, "POST only"},
		{"not loopback", loop, "POST", "10.1.2.3:1", nil, "not on loopback"},
		{"cross-origin", loop, "POST", "127.0.0.1:1", []string{"Sec-Fetch-Site", "cross-site"}, "another origin"},
		{"wrong token", tok, "POST", "10.1.2.3:1", []string{"Authorization", "Bearer nope"}, "wrong bearer token"},
		{"foreign host", loop, "POST", "127.0.0.1:1", []string{"Host", "evil.example"}, "admin.Config.Hosts"},
	} {
		rec := serve(c.h, c.method, "/admin/freeze", c.remote, c.hdr...)
		l := logs.take()
		if rec.Code < 400 || strings.Count(l, "mutation refused") != 1 || !strings.Contains(l, c.reason) || !strings.Contains(l, "action=freeze") {
			t.Errorf("%s: %d, log %q; want one refusal with the reason %q", c.name, rec.Code, l, c.reason)
		}
	}
	if f.c.Frozen() {
		t.Error("a refused freeze froze the chain")
	}
	// A mutation performed is logged too.
	if rec := serve(loop, "POST", "/admin/freeze", "127.0.0.1:1"); rec.Code != 200 || !f.c.Frozen() {
		t.Fatalf("loopback freeze = %d %s", rec.Code, rec.Body)
	}
	if l := logs.take(); !strings.Contains(l, "operator mutation") || strings.Contains(l, "refused") {
		t.Errorf("log after a freeze = %q, want the mutation", l)
	}
}

// TestTokenHidden: no fmt verb and no slog handler prints the token of a
// Config or of a Handler.
func TestTokenHidden(t *testing.T) {
	f := newFixture(t)
	cfg := admin.Config{Mutations: true, Token: "s3cret-tok"}
	testutil.NoSecret(t, "s3cret-tok", "admin.Config", cfg)
	testutil.NoSecret(t, "s3cret-tok", "*admin.Handler", admin.New(f.c, cfg))
}
