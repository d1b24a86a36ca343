package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/admin"
	"github.com/regchain/regchain/registry"
)

// hostile is what an attacker puts in a field: a terminal title change
// (OSC), a colour (CSI) with the 8-bit CSI, a carriage return and a
// newline that forge a line, and a right-to-left override.
const hostile = "\x1b]0;owned\x07\x1b[31m\u009b2J\r\nfake line \u202edlrow"

// clean fails the test if out holds anything a terminal acts on, or a
// line that starts with what the hostile value smuggled in.
func wantClean(t *testing.T, what, out string) {
	t.Helper()
	for _, bad := range []string{"\x1b", "\x07", "\r", "\u009b", "\u202e"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s holds %q raw:\n%s", what, bad, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "fake line") {
			t.Errorf("%s has a forged line:\n%s", what, out)
		}
	}
}

// TestHostileSnapshot: what a snapshot file holds (its source field, an
// instance's metadata) is printed escaped; it went raw to the terminal.
func TestHostileSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot.db")
	s, err := file.OpenStore(path, file.Config{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	in := &registry.Instance{ID: "g-1", Name: "greeter", Metadata: map[string]string{"note": hostile}, Endpoints: []string{"grpc://10.0.0.1:9000"}}
	err = s.SaveSnapshot(ctxT(t), []*registry.Update{{Service: "greeter", Source: hostile, Instances: []*registry.Instance{in}, Time: time.Now()}})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"snapshot", "dump", path}, {"snapshot", "inspect", path}} {
		r := wantCode(t, regctl(t, args...), exitOK)
		wantClean(t, strings.Join(args, " "), r.stdout)
		wantContains(t, strings.Join(args, " "), r.stdout, `\x1b]0;owned\a`)
	}
	for _, args := range [][]string{{"-json", "snapshot", "dump", path}, {"-json", "snapshot", "inspect", path}} {
		r := wantCode(t, regctl(t, args...), exitOK)
		wantClean(t, strings.Join(args, " "), r.stdout)
		// Still JSON, and it still says what the file holds.
		var v any
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", args, err, r.stdout)
		}
		if !strings.Contains(mustJSON(t, v), mustJSON(t, hostile)) {
			t.Errorf("%s: the source is not in the output as it is in the file:\n%s", args, r.stdout)
		}
	}
	// The same from a registry.
	regPath := filepath.Join(t.TempDir(), "registry.db")
	reg, err := file.Open(regPath, file.Config{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	err = reg.Register(ctxT(t), in)
	reg.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"get", "greeter"}, {"-json", "get", "greeter"}} {
		r := wantCode(t, regctl(t, append([]string{"-registry", "file://" + regPath}, args...)...), exitOK)
		wantClean(t, strings.Join(args, " "), r.stdout)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHostileAdminServer: a status and an error from an admin server are
// printed escaped; they went raw to the terminal.
func TestHostileAdminServer(t *testing.T) {
	report := admin.Report{LevelMeaning: hostile, LevelReasons: []string{hostile}, Mutations: hostile,
		Tiers:    []admin.Tier{{Name: hostile, LastError: hostile}},
		Services: []admin.Service{{Name: hostile, Source: hostile}}}
	body, err := json.Marshal(report)
	if err != nil {
		t.Fatal(err)
	}
	// Go's encoder escapes the C0 controls but not DEL, C1 or U+202E; a
	// server may also send invalid UTF-8 and raw bytes outside JSON.
	body = []byte(strings.Replace(string(body), `"mutations":"`, "\"mutations\":\"\xff\x7f\u0085", 1))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error":"` + strings.ReplaceAll(hostile, "\x1b", `\u001b`) + "\x1b[2J\"}"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	defer srv.Close()
	for _, args := range [][]string{{"status", srv.URL}, {"-json", "status", srv.URL}, {"freeze", srv.URL}} {
		r := regctl(t, args...)
		wantClean(t, strings.Join(args, " ")+" stdout", r.stdout)
		wantClean(t, strings.Join(args, " ")+" stderr", r.stderr)
		if args[0] == "-json" {
			var v any
			if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
				t.Errorf("status -json: not JSON: %v\n%s\n%s", err, r.stdout, r.stderr)
			}
		}
	}
}

// TestTokenFiles: the admin token and the registries' secrets come from
// files, not only from the command line, which ps shows.
func TestTokenFiles(t *testing.T) {
	url, _, c := adminServer(t, admin.Config{Mutations: true, Token: "s3cret"})
	t.Setenv("REGCTL_TOKEN", "")
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantCode(t, regctl(t, "-token-file", tok, "freeze", url), exitOK)
	if !c.Frozen() {
		t.Error("not frozen with the token from a file")
	}
	r := wantCode(t, regctl(t, "-token-file", tok, "-token", "x", "unfreeze", url), exitUsage)
	wantContains(t, "stderr", r.stderr, "-token and -token-file")
	r = wantCode(t, regctl(t, "-token-file", filepath.Join(dir, "none"), "unfreeze", url), exitFail)
	wantContains(t, "stderr", r.stderr, "-token-file")

	tg, err := parseTarget("etcd://h:1|consul://h:2|zk://h:3?user=z")
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.apply(connFlags{user: "u", passwordFile: "/run/pw", tokenFile: "/run/tok"}); err != nil {
		t.Fatal(err)
	}
	b := tg.cfg.Backends
	if b[0].PasswordFile != "/run/pw" || b[1].TokenFile != "/run/tok" || b[2].PasswordFile != "/run/pw" || b[2].Username != "z" {
		t.Errorf("flags not applied: %+v", b)
	}
}
