package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/regchain/regchain/admin"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

// chromium returns the browser the test drives: $REGCHAIN_CHROMIUM, else
// /usr/bin/chromium. A missing browser fails the test: the page is only
// known to work where it was rendered.
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("REGCHAIN_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no chromium at %s (%v): run scripts/install-chromium.sh or set REGCHAIN_CHROMIUM", path, err)
	}
	return path
}

// artifacts returns the directory test artifacts go to: $REGCHAIN_ARTIFACTS,
// else a temporary directory.
func artifacts(t *testing.T) string {
	if dir := os.Getenv("REGCHAIN_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// browser starts a headless Chromium for the test and returns its
// chromedp context; the browser is stopped when the test ends.
func browser(t *testing.T, exec string) context.Context {
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exec),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	return bctx
}

// TestPageInBrowser renders the status page in a real headless Chromium
// for a chain whose first tier is down, checks what it shows, saves a
// screenshot, then brings the tier back and checks that the page
// refreshed by itself.
func TestPageInBrowser(t *testing.T) {
	exec := chromium(t)
	f := newFixture(t)
	f.etcdDown(t)
	if err := f.c.Rollback("billing"); err != nil {
		t.Fatalf("Rollback: %v", err)
	}

	mux := http.NewServeMux()
	mux.Handle("/admin/", admin.New(f.c, admin.Config{Title: "checkout-7f9c", Refresh: 200 * time.Millisecond,
		Rules: admin.Rules{Registrations: true, Services: []string{"greeter"}}}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	bctx := browser(t, exec)
	// The first Run starts the browser and must not carry a timeout (it
	// would stop the browser); later steps are bounded.
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/admin/")); err != nil {
		t.Fatalf("chromedp: navigate: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, testutil.Timeout(t))
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`tr[data-tier="etcd"]`)); err != nil {
		t.Fatalf("chromedp: wait for the tiers: %v", err)
	}
	// One evaluation reads every part: the page replaces its content at
	// each refresh, so separate reads could straddle one.
	texts, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(() => {
		const q = s => { const e = document.querySelector(s); return e ? e.innerText : "(missing)" };
		return {title: document.title, level: q('div.level'), etcd: q('tr[data-tier="etcd"]'), consul: q('tr[data-tier="consul"]'),
			greeter: q('tr[data-service="greeter"]'), billing: q('tr[data-service="billing"]'),
			reg: q('tr[data-registration="checkout/web-1"]')};
	})()`))
	if err != nil {
		t.Fatalf("chromedp: read the page: %v", err)
	}
	// The Content-Security-Policy lets the inline style sheet apply (the
	// script runs: the page refreshes, below).
	styled, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`getComputedStyle(document.querySelector('div.level')).display === 'flex' &&
		getComputedStyle(document.querySelector('div.pills')).display === 'flex'`))
	if err != nil || !styled {
		t.Errorf("the page's style sheet did not apply (blocked by the Content-Security-Policy?): %v", err)
	}
	title, level, etcdRow, consulRow := texts["title"], texts["level"], texts["etcd"], texts["consul"]
	greeterRow, billingRow, regRow := texts["greeter"], texts["billing"], texts["reg"]
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG (lower is JPEG)
	if err != nil {
		t.Fatalf("chromedp: screenshot: %v", err)
	}
	shot := filepath.Join(artifacts(t), "admin-page-etcd-down.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)

	checks := []struct{ what, got, want string }{
		{"title", title, "L1 · checkout-7f9c"},
		{"level banner", level, "L1"},
		{"level banner", level, "failed over"},
		{"level banner", level, "READY"},
		{"etcd row", etcdRow, "DOWN"},
		{"etcd row", etcdRow, "simulated outage"},
		{"consul row", consulRow, "UP"},
		{"greeter row", greeterRow, "consul"},
		{"greeter row", greeterRow, "3"},
		{"billing row", billingRow, "snapshot"},
		{"billing row", billingRow, "ROLLED BACK"},
		{"billing row", billingRow, "2 from etcd"},
		{"registrations", regRow, "checkout/web-1"},
		{"registrations", regRow, "PARTIAL"},
		{"registrations", regRow, "consul"},
	}
	for _, c := range checks {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("%s = %q, want it to contain %q", c.what, c.got, c.want)
		}
	}
	if strings.Contains(etcdRow, "UP") {
		t.Errorf("etcd row shows UP while down: %q", etcdRow)
	}

	// The page refreshes itself: bring etcd back and wait for the row.
	f.etcd.SetAvailable(true)
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`(() => { const r = document.querySelector('tr[data-tier="etcd"]'); return r && r.innerText.includes('UP') })()`,
		chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		t.Fatalf("the page did not show etcd up again by itself: %v", err)
	}
}

// TestPageActionsInBrowser clicks the page's mutation buttons in a real
// browser: freeze, roll back a service, release it, unfreeze.
func TestPageActionsInBrowser(t *testing.T) {
	exec := chromium(t)
	f := newFixture(t)
	mux := http.NewServeMux()
	mux.Handle("/admin/", admin.New(f.c, admin.Config{Mutations: true, Refresh: time.Hour, Logger: quiet()})) // refreshed by the buttons only
	srv := httptest.NewServer(mux)
	defer srv.Close()
	bctx := browser(t, exec)
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/admin/")); err != nil {
		t.Fatalf("chromedp: navigate: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, testutil.Timeout(t))
	defer cancel()
	click := func(sel, wantMsg string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Click(sel, chromedp.NodeVisible)); err != nil {
			t.Fatalf("chromedp: click %s: %v", sel, err)
		}
		js := fmt.Sprintf(`(() => { const m = document.getElementById('msg'); return !m.hidden && m.textContent.includes(%q) })()`, wantMsg)
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
			t.Fatalf("no message %q after clicking %s: %v", wantMsg, sel, err)
		}
	}
	waitText := func(sel, want string) {
		t.Helper()
		js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.innerText.includes(%q) })()`, sel, want)
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
			t.Fatalf("%s never showed %q: %v", sel, want, err)
		}
	}

	click(`button[data-action="freeze"]`, "Done: freeze")
	waitText(`div.level`, "FROZEN")
	if !f.c.Frozen() {
		t.Fatal("the Freeze button did not freeze the chain")
	}
	click(`button[data-action="unfreeze"]`, "Done: unfreeze")
	if f.c.Frozen() {
		t.Fatal("the Unfreeze button did not unfreeze the chain")
	}
	f.etcdDown(t) // billing, only in etcd, then stays rolled back
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	click(`button[data-action="rollback"][data-service="billing"]`, "Done: rollback billing")
	waitText(`tr[data-service="billing"]`, "ROLLED BACK")
	click(`button[data-action="release"][data-service="billing"]`, "Done: release billing")
	if st := f.c.Status(); st.Guard.Rollbacks != 1 {
		t.Errorf("rollbacks = %d, want 1", st.Guard.Rollbacks)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("chromedp: screenshot: %v", err)
	}
	shot := filepath.Join(artifacts(t), "admin-page-actions.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
}
