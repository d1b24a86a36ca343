package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/regchain/regchain/admin"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

// FuzzHandler sends the admin handler arbitrary requests (method, path
// with query, Host, Origin, Authorization, body, remote address). It
// never panics; every answer carries the security headers and a known
// status code, and every answer but the page is JSON with bounded,
// escaped error text; a request the handler must refuse (another host, not
// POST, not authorized) changes nothing.
func FuzzHandler(f *testing.F) {
	f.Add("POST", "/admin/freeze", "localhost:9901", "", "Bearer tok", "", "127.0.0.1:1")
	f.Add("POST", "/admin/freeze", "evil.example:9901", "http://evil.example:9901", "", "", "127.0.0.1:1")
	f.Add("POST", "/admin/rollback?service=billing", "127.0.0.1:9901", "", "Bearer tok", "", "10.0.0.1:1")
	f.Add("POST", "/admin/release", "[::1]:9901", "", "Bearer tok", `{"service":"greeter"}`, "[::1]:1")
	f.Add("GET", "/admin/?fragment=1", "localhost", "", "", "", "127.0.0.1:1")
	f.Add("GET", "/admin/status", "10.0.0.7", "", "", "", "10.0.0.9:1")
	f.Add("PUT", "/admin/%1b[2J", "LOCALHOST.", "null", "Bearer", "{", "1.2.3.4:5")
	fx := newFixture(f)
	h := admin.New(fx.c, admin.Config{Mutations: true, Token: "tok", Logger: quiet()})
	f.Fuzz(func(t *testing.T, method, target, host, origin, auth, body, remote string) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		req, err := http.NewRequest(method, "http://x"+target, strings.NewReader(body))
		if err != nil {
			return // not a request a server would hand the handler
		}
		req.Host, req.RemoteAddr = host, remote
		req.Header.Set("Origin", origin)
		req.Header.Set("Authorization", auth)
		frozen := fx.c.Frozen()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		hdr := rec.Header()
		if hdr.Get("X-Frame-Options") != "DENY" || hdr.Get("X-Content-Type-Options") != "nosniff" ||
			!strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Fatalf("answer %d without the security headers: %v", rec.Code, hdr)
		}
		switch rec.Code {
		case 200, 400, 401, 403, 404, 405, 500, 503:
		default:
			t.Fatalf("status %d", rec.Code)
		}
		if strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
			var e struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("answer %d is not JSON: %v: %.200q", rec.Code, err, rec.Body)
			}
			testutil.SafeMessage(t, "error", e.Error)
		} else if rec.Code != 200 {
			t.Fatalf("answer %d is not JSON", rec.Code)
		}
		if rec.Code != 200 && fx.c.Frozen() != frozen {
			t.Fatalf("a refused request (%d) changed the chain", rec.Code)
		}
		if fx.c.Frozen() != frozen && (method != "POST" || auth != "Bearer tok") {
			t.Fatalf("%s without the token changed the chain", method)
		}
		fx.c.Freeze(false)
	})
}
