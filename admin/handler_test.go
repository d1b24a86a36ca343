package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/regchain/regchain/admin"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

// do sends a request to h mounted at /admin/ and returns the status code and
// body.
func do(t *testing.T, h http.Handler, method, path, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/admin/", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestStatusJSON(t *testing.T) {
	f := newFixture(t)
	f.etcdDown(t)
	code, hdr, body := do(t, admin.New(f.c, admin.Config{}), "GET", "/admin/status", "")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("GET status = %d %s", code, hdr.Get("Content-Type"))
	}
	var r admin.Report
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("decode: %v\n%s", err, body)
	}
	if r.Level != chain.L1 || !r.Ready || !r.Live || r.Mutations != "off" {
		t.Errorf("level/ready/live/mutations = %v/%v/%v/%q, want L1/true/true/off", r.Level, r.Ready, r.Live, r.Mutations)
	}
	if len(r.Tiers) != 2 || r.Tiers[0].Name != "etcd" || r.Tiers[0].Up || r.Tiers[0].Since == nil || !r.Tiers[1].Up {
		t.Errorf("tiers = %+v", r.Tiers)
	}
	svc := map[string]admin.Service{}
	for _, s := range r.Services {
		svc[s.Name] = s
	}
	if g := svc["greeter"]; g.Source != "consul" || g.Instances != 3 || g.Stale {
		t.Errorf("greeter = %+v, want 3 from consul, live", g)
	}
	if b := svc["billing"]; !b.Stale || b.Instances != 2 || b.LastGood == nil || b.LastGood.Instances != 2 || b.LastGood.Source != "etcd" {
		t.Errorf("billing = %+v, want 2 stale with a last known good of 2 from etcd", b)
	}
	if len(r.Registrations) != 1 || r.Registrations[0].ID != "web-1" || r.Registrations[0].Live || strings.Join(r.Registrations[0].Tiers, ",") != "consul" {
		t.Errorf("registrations = %+v, want web-1 held by consul only", r.Registrations)
	}
	if !r.Snapshot.Configured || r.Snapshot.Services != 2 {
		t.Errorf("snapshot = %+v", r.Snapshot)
	}
	if len(r.Recent) == 0 || r.Recent[len(r.Recent)-1].From != "etcd" {
		t.Errorf("recent = %+v, want a failover from etcd", r.Recent)
	}
}

func TestReadiness(t *testing.T) {
	f := newFixture(t)
	f.etcdDown(t)
	cases := []struct {
		name   string
		rules  admin.Rules
		ready  bool
		reason string
	}{
		{"zero rules at L1", admin.Rules{}, true, ""},
		{"unready at L1", admin.Rules{UnreadyAt: chain.L1}, false, "level L1"},
		{"registrations held somewhere", admin.Rules{Registrations: true}, true, ""},
		{"service served live", admin.Rules{Services: []string{"greeter"}, MaxStale: time.Nanosecond}, true, ""},
		{"service never read", admin.Rules{Services: []string{"nope"}}, false, "service nope is not served"},
		{"stale service, any age", admin.Rules{Services: []string{"billing"}}, true, ""},
		{"stale service too old", admin.Rules{Services: []string{"billing"}, MaxStale: time.Nanosecond}, false, "service billing is served stale"},
		{"custom check", admin.Rules{Check: func(chain.Status) error { return errors.New("warming up") }}, false, "warming up"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := do(t, admin.New(f.c, admin.Config{Rules: tc.rules}), "GET", "/admin/readyz", "")
			var got struct {
				Ready   bool
				Level   chain.Level
				Reasons []string
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("decode: %v: %s", err, body)
			}
			wantCode := 200
			if !tc.ready {
				wantCode = 503
			}
			if code != wantCode || got.Ready != tc.ready || !strings.Contains(strings.Join(got.Reasons, "|"), tc.reason) {
				t.Errorf("readyz = %d %s; want %d with reason %q", code, body, wantCode, tc.reason)
			}
		})
	}

	// Every writable tier down: L3, and the registration is held nowhere.
	f.consul.SetAvailable(false)
	testutil.WaitFor(t, testutil.Timeout(t), "L3", testutil.Until(func() bool { return f.c.Degradation().Level == chain.L3 }))
	for _, tc := range []struct {
		name   string
		rules  admin.Rules
		ready  bool
		reason string
	}{
		{"zero rules at L3", admin.Rules{}, false, "level L3"},
		{"level ignored", admin.Rules{IgnoreLevel: true}, true, ""},
		{"registration nowhere", admin.Rules{IgnoreLevel: true, Registrations: true}, false, "registration checkout/web-1 is held by no tier"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := do(t, admin.New(f.c, admin.Config{Rules: tc.rules}), "GET", "/admin/readyz", "")
			if (code == 200) != tc.ready || !strings.Contains(body, tc.reason) {
				t.Errorf("readyz = %d %s; want ready %v with reason %q", code, body, tc.ready, tc.reason)
			}
		})
	}
}

func TestLiveness(t *testing.T) {
	f := newFixture(t)
	h := admin.New(f.c, admin.Config{})
	if code, _, body := do(t, h, "GET", "/admin/livez", ""); code != 200 || !strings.Contains(body, `"live": true`) {
		t.Errorf("livez = %d %s, want 200 live", code, body)
	}
	f.c.Close()
	if code, _, body := do(t, h, "GET", "/admin/livez", ""); code != 503 || !strings.Contains(body, `"live": false`) {
		t.Errorf("livez after Close = %d %s, want 503", code, body)
	}
	if code, _, body := do(t, h, "GET", "/admin/readyz", ""); code != 503 || !strings.Contains(body, "the chain is closed") {
		t.Errorf("readyz after Close = %d %s, want 503 closed", code, body)
	}
}

func TestMutations(t *testing.T) {
	f := newFixture(t)
	f.etcdDown(t) // billing, only in etcd, stays rolled back until released
	off := admin.New(f.c, admin.Config{Logger: quiet()})
	loop := admin.New(f.c, admin.Config{Mutations: true, Logger: quiet()})
	tok := admin.New(f.c, admin.Config{Mutations: true, Token: "s3cret", Logger: quiet()})
	cases := []struct {
		name      string
		h         http.Handler
		method    string
		path      string
		body      string
		hdr       []string
		code      int
		contains  string
		frozenNow bool
	}{
		{"disabled", off, "POST", "/admin/freeze", "", nil, 403, "mutations are disabled", false},
		{"GET a mutation", loop, "GET", "/admin/freeze", "", nil, 405, "POST only", false},
		{"POST a read", loop, "POST", "/admin/status", "", nil, 405, "use GET", false},
		{"unknown path", loop, "GET", "/admin/nope", "", nil, 404, "no such endpoint", false},
		{"no token", tok, "POST", "/admin/freeze", "", nil, 401, "missing or wrong bearer token", false},
		{"wrong token", tok, "POST", "/admin/freeze", "", []string{"Authorization", "Bearer nope"}, 401, "bearer token", false},
		{"token freeze", tok, "POST", "/admin/freeze", "", []string{"Authorization", "Bearer s3cret"}, 200, `"frozen": true`, true},
		{"cross-origin browser", loop, "POST", "/admin/freeze", "", []string{"Sec-Fetch-Site", "cross-site"}, 403, "another origin", true}, // still frozen from the previous case
		{"loopback unfreeze", loop, "POST", "/admin/unfreeze", "", nil, 200, `"frozen": false`, false},
		{"release without service", loop, "POST", "/admin/release", "", nil, 400, "no service", false},
		{"release bad body", loop, "POST", "/admin/release", "{", nil, 400, "bad JSON body", false},
		{"release with nothing held", loop, "POST", "/admin/release?service=greeter", "", nil, 404, "no held drop or rollback", false},
		{"rollback unknown", loop, "POST", "/admin/rollback?service=nope", "", nil, 404, "no last known good", false},
		{"rollback invalid", loop, "POST", "/admin/rollback?service=a%20b", "", nil, 400, "invalid", false},
		{"rollback", loop, "POST", "/admin/rollback", `{"service":"billing"}`, nil, 200, `"service": "billing"`, false},
		{"release the rollback", loop, "POST", "/admin/release?service=billing", "", nil, 200, `"action": "release"`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := do(t, tc.h, tc.method, tc.path, tc.body, tc.hdr...)
			if code != tc.code || !strings.Contains(body, tc.contains) {
				t.Fatalf("%s %s = %d %s; want %d containing %q", tc.method, tc.path, code, body, tc.code, tc.contains)
			}
			if code == 405 && hdr.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			if code == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if f.c.Frozen() != tc.frozenNow {
				t.Errorf("Frozen = %v, want %v", f.c.Frozen(), tc.frozenNow)
			}
			if tc.name == "rollback" {
				a, err := f.c.GetServiceWithInfo(context.Background(), "billing")
				if err != nil || a.Source != chain.SnapshotSource {
					t.Errorf("billing after rollback = %+v, %v; want Source snapshot", a, err)
				}
			}
		})
	}

	t.Run("not loopback", func(t *testing.T) {
		req := httptest.NewRequest("POST", "/admin/freeze", nil)
		req.Host = "10.0.0.7:9901"
		req.RemoteAddr = "10.1.2.3:4567"
		rec := httptest.NewRecorder()
		loop.ServeHTTP(rec, req)
		if rec.Code != 403 || !strings.Contains(rec.Body.String(), "not on loopback") || f.c.Frozen() {
			t.Errorf("remote freeze = %d %s (frozen %v); want 403", rec.Code, rec.Body, f.c.Frozen())
		}
	})
}

func TestPage(t *testing.T) {
	f := newFixture(t)
	f.etcdDown(t)
	h := admin.New(f.c, admin.Config{Title: "svc<x>"})
	code, hdr, page := do(t, h, "GET", "/admin/", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("page = %d %s", code, hdr.Get("Content-Type"))
	}
	for _, want := range []string{"<!doctype html>", "<style>", "<script>", `http-equiv="refresh"`, "svc&lt;x&gt;", `data-tier="etcd"`, "DOWN"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"http://", "https://", "<link", " src="} {
		if strings.Contains(page, bad) {
			t.Errorf("page refers to an external asset: contains %q", bad)
		}
	}
	_, _, frag := do(t, h, "GET", "/admin/?fragment=1", "")
	if strings.Contains(frag, "<html") || !strings.Contains(frag, `data-tier="consul"`) {
		t.Errorf("fragment = %.200s…, want the content only", frag)
	}
}

// TestHeldDrop shows a drop the guard holds in the JSON and on the page,
// and lets it through with release.
func TestHeldDrop(t *testing.T) {
	f := newFixture(t)
	billingCount := func() int {
		for _, s := range f.c.Status().Services {
			if s.Name == "billing" {
				return s.Instances
			}
		}
		return -1
	}
	// 2 -> 1 is no drop (MaxDropShare 0.5); 1 -> 0 is. One at a time, so
	// that the chain sees both steps.
	if err := f.etcd.Deregister(context.Background(), inst("billing", "b1", 0)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, testutil.Timeout(t), "billing at 1", testutil.Until(func() bool { return billingCount() == 1 }))
	if err := f.etcd.Deregister(context.Background(), inst("billing", "b2", 0)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, testutil.Timeout(t), "billing's drop held", testutil.Until(func() bool {
		for _, s := range f.c.Status().Services {
			if s.Name == "billing" && s.Held {
				return true
			}
		}
		return false
	}))
	h := admin.New(f.c, admin.Config{Mutations: true, Logger: quiet()})
	_, _, body := do(t, h, "GET", "/admin/status", "")
	var r admin.Report
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	var billing admin.Service
	for _, s := range r.Services {
		if s.Name == "billing" {
			billing = s
		}
	}
	if !billing.Held || billing.HeldInstances != 0 || billing.Instances != 1 || billing.HeldSince == nil || r.Guard.Held != 1 {
		t.Errorf("billing = %+v, guard %+v; want 1 served, a drop to 0 held", billing, r.Guard)
	}
	_, _, page := do(t, h, "GET", "/admin/", "")
	if !strings.Contains(page, "HELD</span> drop to 0") || !strings.Contains(page, `data-action="release" data-service="billing"`) {
		t.Error("the page shows no held drop with a Release button for billing")
	}
	if code, _, body := do(t, h, "POST", "/admin/release?service=billing", ""); code != 200 {
		t.Fatalf("release = %d %s", code, body)
	}
	for _, s := range f.c.Status().Services {
		if s.Name == "billing" && (s.Held || s.Instances != 0) {
			t.Errorf("billing after release = %+v, want the drop served", s)
		}
	}
}
