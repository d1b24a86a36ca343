package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/registry"
)

// writeRegistry writes fleet() into a new file registry and returns its
// path.
func writeRegistry(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry.db")
	reg, err := file.Open(path, file.Config{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for _, in := range fleet() {
		if err := reg.Register(ctxT(t), in); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestFileRegistry(t *testing.T) {
	path := writeRegistry(t)
	url := "file://" + path

	t.Run("list", func(t *testing.T) {
		r := wantCode(t, regctl(t, "-registry", url, "list"), 0)
		if want := "billing\ngreeter\n"; r.stdout != want {
			t.Errorf("stdout = %q, want %q", r.stdout, want)
		}
	})

	t.Run("get", func(t *testing.T) {
		r := wantCode(t, regctl(t, "-registry", url, "get", "billing"), 0)
		wantContains(t, "stdout", r.stdout, "ID", "b-1", "http://10.0.0.3:8080")
	})

	t.Run("get -json", func(t *testing.T) {
		r := wantCode(t, regctl(t, "-registry", url, "-json", "get", "greeter"), 0)
		var got []*registry.Instance
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v:\n%s", err, r.stdout)
		}
		if want := fleet()[:2]; !registry.EqualInstances(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})

	t.Run("ping", func(t *testing.T) {
		r := wantCode(t, regctl(t, "-registry", url, "ping"), 0)
		wantContains(t, "stdout", r.stdout, "ok: "+url)
	})

	t.Run("watch -count 1", func(t *testing.T) {
		r := wantCode(t, regctl(t, "-registry", url, "watch", "-count", "1", "greeter"), 0)
		wantContains(t, "stdout", r.stdout, " service=greeter source=file ", " count=2 ids=g-1,g-2\n")
	})

	t.Run("locked", func(t *testing.T) {
		reg, err := file.Open(path, file.Config{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Close()
		r := wantCode(t, regctl(t, "-registry", url, "-timeout", "200ms", "list"), 1)
		wantContains(t, "stderr", r.stderr, "list on "+url+": locked:", "hint: another process has the file open")
	})
}

// writeSnapshot saves three entries, one 1 h old, one 2 s old, one empty
// and 5 min old, into a new snapshot file and returns its path.
func writeSnapshot(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "snapshot.db")
	s, err := file.OpenStore(path, file.Config{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	f := fleet()
	err = s.SaveSnapshot(ctxT(t), []*registry.Update{
		{Service: "greeter", Instances: f[:2], Source: "etcd", Revision: 42, Time: now.Add(-time.Hour)},
		{Service: "billing", Instances: f[2:], Source: "consul", Revision: 7, Time: now.Add(-2 * time.Second)},
		{Service: "gone", Source: "etcd", Revision: 40, Time: now.Add(-5 * time.Minute)},
	})
	if err != nil {
		t.Fatal(err)
	}
	// gone keeps its last known good state beside the empty one.
	err = s.SaveSnapshotEntries(ctxT(t), []registry.SnapshotEntry{{
		Update: &registry.Update{Service: "gone", Source: "etcd", Revision: 40, Time: now.Add(-5 * time.Minute)},
		LastGood: &registry.Update{Service: "gone", Source: "etcd", Revision: 39, Time: now.Add(-6 * time.Minute),
			Instances: []*registry.Instance{{ID: "x-1", Name: "gone", Version: "v1", Endpoints: []string{"grpc://10.0.0.9:9000"}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSnapshot(t *testing.T) {
	path := writeSnapshot(t)

	t.Run("dump", func(t *testing.T) {
		r := wantCode(t, regctl(t, "snapshot", "dump", path), 0)
		blocks := strings.Split(r.stdout, "\n\n")
		if len(blocks) != 3 {
			t.Fatalf("got %d entries, want 3:\n%s", len(blocks), r.stdout)
		}
		wantContains(t, "billing entry", blocks[0], "billing  source=consul revision=7 age=2", " instances=1\n", "b-1", "http://10.0.0.3:8080")
		wantContains(t, "gone entry", blocks[1], "gone  source=etcd revision=40 age=5m", " instances=0\n", "(no instances",
			"last known good: source=etcd revision=39 confirmed=", " instances=1\n", "x-1", "grpc://10.0.0.9:9000")
		wantContains(t, "greeter entry", blocks[2], "greeter  source=etcd revision=42 age=1h0m", " confirmed=", " saved=", " instances=2\n",
			"g-1", "v1.2.0", "grpc://10.0.0.1:9000,http://10.0.0.1:8000", "zone=eu-1", "g-2")
	})

	t.Run("dump -json", func(t *testing.T) {
		r := wantCode(t, regctl(t, "snapshot", "dump", "-json", path), 0)
		var got []jsonEntry
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v:\n%s", err, r.stdout)
		}
		if len(got) != 3 {
			t.Fatalf("got %d entries, want 3:\n%s", len(got), r.stdout)
		}
		g := got[2]
		if g.Service != "greeter" || g.Source != "etcd" || g.Revision != 42 || g.AgeSeconds < 3600 || g.Saved.IsZero() {
			t.Errorf("greeter entry = %+v", g)
		}
		if !registry.EqualInstances(g.Instances, fleet()[:2]) {
			t.Errorf("greeter instances = %v, want %v", g.Instances, fleet()[:2])
		}
		if lg := got[1].LastGood; lg == nil || lg.Source != "etcd" || len(lg.Instances) != 1 || lg.Instances[0].ID != "x-1" {
			t.Errorf("gone's last good state = %+v", lg)
		}
		if got[0].LastGood != nil || got[2].LastGood != nil {
			t.Errorf("a non-empty entry has a last good state:\n%s", r.stdout)
		}
		if !strings.Contains(r.stdout, `"instances": []`) {
			t.Errorf("the empty entry's instances are not []:\n%s", r.stdout)
		}
	})

	t.Run("inspect", func(t *testing.T) {
		r := wantCode(t, regctl(t, "snapshot", "inspect", path), 0)
		wantContains(t, "stdout", r.stdout,
			"schema:     ok\n", "entries:    ok", "services:   3 (1 empty)\n", "instances:  3\n", "last good:  1 services",
			"oldest:     greeter from etcd, age 1h0m", "newest:     billing from consul, age 2")
	})

	t.Run("inspect -json", func(t *testing.T) {
		r := wantCode(t, regctl(t, "-json", "snapshot", "inspect", path), 0)
		var s summary
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatalf("%v:\n%s", err, r.stdout)
		}
		if s.Schema != "ok" || s.Services != 3 || s.Empty != 1 || s.Instances != 3 || s.LastGood != 1 || s.Skipped != 0 || s.Size == 0 ||
			s.Oldest == nil || s.Oldest.Service != "greeter" || s.Newest == nil || s.Newest.Service != "billing" {
			t.Errorf("summary = %s", r.stdout)
		}
	})

	t.Run("locked", func(t *testing.T) {
		s, err := file.OpenStore(path, file.Config{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		begin := time.Now()
		r := wantCode(t, regctl(t, "-timeout", "200ms", "snapshot", "inspect", path), 1)
		wantContains(t, "stderr", r.stderr, "snapshot inspect "+path+": locked:", "hint: another process has the file open")
		if d := time.Since(begin); d > 5*time.Second {
			t.Errorf("took %v with -timeout 200ms", d)
		}
	})
}

// Damaged, foreign, missing and mistaken files exit 1 with a message that
// says so.
func TestSnapshotBadFiles(t *testing.T) {
	good, err := os.ReadFile(writeSnapshot(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// An endpoint's bytes altered inside its entry: the page structure
	// is intact, the entry's checksum is not.
	damaged := bytes.ReplaceAll(good, []byte("10.0.0.3:8080"), []byte("10.0.0.3:8081"))
	if bytes.Equal(damaged, good) {
		t.Fatal("the endpoint to damage is not in the file")
	}
	foreign := filepath.Join(dir, "foreign.db")
	db, err := bolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("something-else"))
		return err
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		path   string
		stderr []string
		stdout string // for dump and inspect of a file whose damaged entries are skipped
	}{
		{"truncated", write("truncated.db", good[:len(good)/2]), []string{": corrupt: ", "hint: restore the file"}, ""},
		{"garbage", write("garbage.db", bytes.Repeat([]byte("regchain"), 2048)), []string{": corrupt: "}, ""},
		{"empty", write("empty.db", nil), []string{": corrupt: ", "empty"}, ""},
		{"damaged entry", write("damaged.db", damaged), []string{
			": corrupt: ", "1 entry could not be decoded", "service=billing",
		}, "greeter"},
		{"foreign bbolt file", foreign, []string{": unsupported schema: ", "not written by regchain"}, ""},
		{"missing", filepath.Join(dir, "missing.db"), []string{": no such file: "}, ""},
		{"registry file", writeRegistry(t), []string{": wrong kind of file: ", "this is a registry (Open) file, not a snapshot store", "-registry file://"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, sub := range []string{"inspect", "dump"} {
				r := wantCode(t, regctl(t, "snapshot", sub, tc.path), 1)
				wantContains(t, sub+" stderr", r.stderr, append([]string{"regctl: snapshot " + sub + " " + tc.path + ": "}, tc.stderr...)...)
				if tc.stdout == "" && r.stdout != "" {
					t.Errorf("%s stdout = %q, want nothing", sub, r.stdout)
				}
				wantContains(t, sub+" stdout", r.stdout, tc.stdout)
			}
		})
	}

	t.Run("damaged entry summary", func(t *testing.T) {
		r := wantCode(t, regctl(t, "-json", "snapshot", "inspect", filepath.Join(dir, "damaged.db")), 1)
		var s summary
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatalf("%v:\n%s", err, r.stdout)
		}
		if s.Skipped != 1 || s.Services != 2 {
			t.Errorf("summary = %s, want 2 services and 1 skipped entry", r.stdout)
		}
		names := []string{s.Oldest.Service, s.Newest.Service}
		if slices.Contains(names, "billing") {
			t.Errorf("the damaged entry shows in %s", r.stdout)
		}
	})
}
