package file

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/regchain/regchain/registry"
)

// A damaged file must give an error (ErrCorrupt or ErrSchema, both with
// registry.ErrInvalid), never a panic, a hang or, for the Store, wrong data.

type fixture struct {
	kind    string // "registry" or "store"
	data    []byte
	reg     map[string][]*registry.Instance // what a registry fixture holds
	updates []*registry.Update              // what a store fixture holds
}

// fixtures builds a small registry file and a store file big enough for
// branch pages, overflow pages and a non-empty freelist.
func fixtures(t testing.TB) []*fixture {
	t.Helper()
	dir := t.TempDir()
	regPath := filepath.Join(dir, "reg.db")
	r := mustOpen(t, regPath, quiet())
	reg := map[string][]*registry.Instance{}
	for i := range 40 {
		in := inst(fmt.Sprintf("svc%d", i%5), fmt.Sprintf("i%02d", i), i)
		if err := r.Register(ctxT(t), in); err != nil {
			t.Fatal(err)
		}
		reg[in.Name] = append(reg[in.Name], in)
	}
	r.Close()

	snapPath := filepath.Join(dir, "snap.db")
	s := mustOpenStore(t, snapPath, quiet())
	updates := fleet(150, 3)
	big := fleet(3, 40) // entries larger than a page
	for _, u := range big {
		u.Service = "big-" + u.Service
		for _, in := range u.Instances {
			in.Name = u.Service
		}
	}
	updates = append(updates, big...)
	for range 3 { // rewrites leave free pages behind
		if err := s.SaveSnapshot(ctxT(t), updates); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return []*fixture{
		{kind: "registry", data: read(regPath), reg: reg},
		{kind: "store", data: read(snapPath), updates: updates},
	}
}

// exercise opens a copy of data and uses it every way it can. It returns
// "rejected" or "opened" and an error for a broken promise. A hang fails
// the test after a deadline.
func (f *fixture) exercise(t *testing.T, data []byte) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), f.kind+".db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	type result struct {
		outcome string
		err     error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		if f.kind == "registry" {
			res.outcome, res.err = f.exerciseRegistry(path)
		} else {
			res.outcome, res.err = f.exerciseStore(path)
		}
		done <- res
	}()
	select {
	case res := <-done:
		return res.outcome, res.err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no answer within 30s: a hang", f.kind)
		return "", nil
	}
}

// acceptable reports whether err is one a damaged (or wrong) file may give.
func acceptable(err error) bool {
	return err == nil || errors.Is(err, registry.ErrInvalid) && (errors.Is(err, ErrCorrupt) || errors.Is(err, ErrSchema) || errors.Is(err, ErrWrongKind))
}

func (f *fixture) exerciseRegistry(path string) (string, error) {
	ctx := context.Background()
	r, err := Open(path, quiet())
	if err != nil {
		if !acceptable(err) {
			return "", fmt.Errorf("Open: unexpected error %v", err)
		}
		return "rejected", nil
	}
	defer r.Close()
	for name := range f.reg {
		if _, err := r.GetService(ctx, name); err != nil && !errors.Is(err, registry.ErrNotFound) {
			return "", fmt.Errorf("GetService: %v", err)
		}
	}
	if _, err := r.ListServices(ctx); err != nil {
		return "", fmt.Errorf("ListServices: %v", err)
	}
	outcome := "opened"
	// Writes may find damage bbolt had not read yet: ErrCorrupt, no panic.
	if err := r.Register(ctx, inst("svc1", "new", 99)); !acceptable(err) {
		return "", fmt.Errorf("Register: %v", err)
	} else if err != nil {
		outcome = "opened, write failed"
	}
	if err := r.Deregister(ctx, &registry.Instance{Name: "svc2", ID: "i02"}); !acceptable(err) {
		return "", fmt.Errorf("Deregister: %v", err)
	}
	if err := r.Close(); err != nil {
		return "", fmt.Errorf("Close: %v", err)
	}
	r2, err := Open(path, quiet())
	if !acceptable(err) {
		return "", fmt.Errorf("reopen: %v", err)
	}
	if r2 != nil {
		r2.Close()
	}
	return outcome, nil
}

func (f *fixture) exerciseStore(path string) (string, error) {
	ctx := context.Background()
	s, err := OpenStore(path, quiet())
	if err != nil {
		if !acceptable(err) {
			return "", fmt.Errorf("OpenStore: unexpected error %v", err)
		}
		return "rejected", nil
	}
	defer s.Close()
	outcome := "opened"
	check := func() error {
		got, err := s.LoadSnapshot(ctx)
		if !acceptable(err) {
			return fmt.Errorf("LoadSnapshot: %v", err)
		}
		if err != nil {
			outcome = "opened, load failed"
		} else if len(got) < len(f.updates) && outcome == "opened" {
			outcome = "opened, entries skipped"
		}
		// What comes back is a subset of what was saved, each entry exact:
		// damage is never passed off as data.
		want := make(map[string]*registry.Update)
		for _, u := range f.updates {
			want[u.Service] = u
		}
		for _, e := range got {
			if err := sameUpdate(e.Update, want[e.Update.Service]); err != nil {
				return fmt.Errorf("LoadSnapshot returned a damaged entry: %v", err)
			}
		}
		return nil
	}
	if err := check(); err != nil {
		return "", err
	}
	if err := s.SaveSnapshot(ctx, f.updates[:5]); !acceptable(err) {
		return "", fmt.Errorf("SaveSnapshot: %v", err)
	} else if err != nil {
		outcome = "opened, save failed"
	}
	if err := check(); err != nil {
		return "", err
	}
	if err := s.Close(); err != nil {
		return "", fmt.Errorf("Close: %v", err)
	}
	s2, err := OpenStore(path, quiet())
	if !acceptable(err) {
		return "", fmt.Errorf("reopen: %v", err)
	}
	if s2 != nil {
		s2.Close()
	}
	return outcome, nil
}

func TestGarbageFiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{1, 100, 4095, 4096, 8192, 20000, 65536} {
		for _, kind := range []string{"registry", "store"} {
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			path := filepath.Join(t.TempDir(), "x.db")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			var err error
			if kind == "registry" {
				var r *Registry
				r, err = Open(path, quiet())
				closeIf(r)
			} else {
				var s *Store
				s, err = OpenStore(path, quiet())
				closeIf(s)
			}
			if !errors.Is(err, ErrCorrupt) || !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), path) {
				t.Errorf("%s of %d random bytes: error %v, want ErrCorrupt naming the file", kind, size, err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
				t.Errorf("%s of %d random bytes: the file was changed", kind, size)
			}
		}
	}
}

func TestTruncatedFiles(t *testing.T) {
	for _, f := range fixtures(t) {
		size := len(f.data)
		lengths := []int{1, 16, 100, 4095, 4096, 8191, 8192, 12288, 16384, size / 3, size / 2, size - 4096, size - 1}
		rejected := 0
		for _, n := range lengths {
			if n <= 0 || n >= size {
				continue
			}
			outcome, err := f.exercise(t, f.data[:n])
			if err != nil {
				t.Errorf("%s truncated to %d of %d bytes: %v", f.kind, n, size, err)
			}
			if outcome == "rejected" {
				rejected++
				continue
			}
			// Opening a truncated file is fine only if nothing in use was cut.
			if err := f.intact(t, f.data[:n]); err != nil {
				t.Errorf("%s truncated to %d of %d bytes opened, but: %v", f.kind, n, size, err)
			}
		}
		if rejected == 0 {
			t.Errorf("%s: no truncation was rejected", f.kind)
		}
		t.Logf("%s: %d of %d truncations rejected with ErrCorrupt", f.kind, rejected, len(lengths))
	}
}

// intact checks that a file opens with all the fixture's data.
func (f *fixture) intact(t *testing.T, data []byte) error {
	path := filepath.Join(t.TempDir(), "intact.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if f.kind == "store" {
		s, err := OpenStore(path, quiet())
		if err != nil {
			return err
		}
		defer s.Close()
		return checkEntries(s, f.updates)
	}
	r, err := Open(path, quiet())
	if err != nil {
		return err
	}
	defer r.Close()
	for name, want := range f.reg {
		got, err := r.GetService(ctxT(t), name)
		if err != nil || !registry.EqualInstances(got, want) {
			return fmt.Errorf("GetService(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	return nil
}

func TestFlippedBytes(t *testing.T) {
	trials := 150
	if testing.Short() {
		trials = 30
	}
	for _, f := range fixtures(t) {
		// Flip bytes in the pages in use (below the high water mark of the
		// meta pages), half of them in page headers and first elements,
		// where damage is structural.
		used := int(max(binary.NativeEndian.Uint64(f.data[16+40:]), binary.NativeEndian.Uint64(f.data[4096+16+40:]))) * 4096
		outcomes := map[string]int{}
		for seed := range uint64(trials) {
			rng := rand.New(rand.NewPCG(seed, 7))
			data := bytes.Clone(f.data)
			var where []int
			for range 1 + rng.IntN(8) {
				i := rng.IntN(used)
				if rng.IntN(2) == 0 {
					i = i/4096*4096 + rng.IntN(64)
				}
				data[i] ^= byte(1 + rng.IntN(255))
				where = append(where, i)
			}
			outcome, err := f.exercise(t, data)
			if err != nil {
				t.Errorf("%s with bytes %v flipped (seed %d): %v", f.kind, where, seed, err)
			}
			outcomes[outcome]++
		}
		t.Logf("%s: %d trials: %v", f.kind, trials, outcomes)
	}
}

// findPage returns the offset of the first page of data (4 KiB pages) of
// type flag, or -1.
func findPage(data []byte, flag uint16) int {
	for off := 2 * 4096; off+4096 <= len(data); off += 4096 {
		if binary.NativeEndian.Uint16(data[off+8:]) == flag && binary.NativeEndian.Uint64(data[off:]) == uint64(off/4096) {
			return off
		}
	}
	return -1
}

// TestLoopingPages crafts the damage on which bbolt itself would loop or
// walk out of the file: the check at open must catch each.
func TestLoopingPages(t *testing.T) {
	f := fixtures(t)[1]
	branch := findPage(f.data, branchPageFlag)
	leaf := findPage(f.data, leafPageFlag)
	if branch < 0 || leaf < 0 {
		t.Fatalf("fixture has no branch (%d) or leaf (%d) page", branch, leaf)
	}
	cases := []struct {
		name  string
		patch func(d []byte)
		words string
	}{
		{"branch points at itself", func(d []byte) {
			binary.NativeEndian.PutUint64(d[branch+pageHeaderSize+8:], uint64(branch/4096))
		}, "reached twice"},
		{"branch points at a meta page", func(d []byte) {
			binary.NativeEndian.PutUint64(d[branch+pageHeaderSize+8:], 1)
		}, "outside"},
		{"branch points beyond the file", func(d []byte) {
			binary.NativeEndian.PutUint64(d[branch+pageHeaderSize+8:], 1<<40)
		}, "outside"},
		{"leaf element beyond its page", func(d []byte) {
			binary.NativeEndian.PutUint32(d[leaf+pageHeaderSize+4:], 1<<20)
		}, "outside"},
		{"branch count too large", func(d []byte) {
			binary.NativeEndian.PutUint16(d[branch+10:], 0xFFF0)
		}, "do not fit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := bytes.Clone(f.data)
			c.patch(data)
			path := filepath.Join(t.TempDir(), "snap.db")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenStore(path, quiet())
			closeIf(s)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.words) {
				t.Errorf("OpenStore = %v, want ErrCorrupt saying %q", err, c.words)
			}
		})
	}
}

// TestReopenAfterManyWrites writes a long random history (inserts,
// updates, deletes, entries larger than a page) and reopens the files
// along the way: the check at open never refuses a file bbolt wrote, and
// the files hold exactly what was written.
func TestReopenAfterManyWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	dir := t.TempDir()

	regPath := filepath.Join(dir, "reg.db")
	r := mustOpen(t, regPath, quiet())
	model := map[string]map[string]*registry.Instance{}
	for op := range 200 {
		svc := fmt.Sprintf("s%d", rng.IntN(8))
		id := fmt.Sprintf("i%d", rng.IntN(30))
		if rng.IntN(3) == 0 {
			if err := r.Deregister(ctx, &registry.Instance{Name: svc, ID: id}); err != nil {
				t.Fatal(err)
			}
			delete(model[svc], id)
		} else {
			in := inst(svc, id, op)
			if rng.IntN(10) == 0 {
				in.Metadata["big"] = strings.Repeat("b", rng.IntN(20000))
			}
			if err := r.Register(ctx, in); err != nil {
				t.Fatal(err)
			}
			if model[svc] == nil {
				model[svc] = map[string]*registry.Instance{}
			}
			model[svc][id] = in
		}
		if op%40 == 39 {
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			r = mustOpen(t, regPath, quiet())
			for svc, ins := range model {
				var want []*registry.Instance
				for _, in := range ins {
					want = append(want, in)
				}
				got, err := r.GetService(ctx, svc)
				if len(want) == 0 && errors.Is(err, registry.ErrNotFound) {
					continue
				}
				if err != nil || !registry.EqualInstances(got, want) {
					t.Fatalf("after %d ops, reopened: GetService(%s) = %v, %v; want %v", op+1, svc, got, err, want)
				}
			}
		}
	}
	r.Close()

	snapPath := filepath.Join(dir, "snap.db")
	s := mustOpenStore(t, snapPath, quiet())
	all := fleet(300, 1)
	smodel := map[string]*registry.Update{}
	for op := range 30 {
		var batch []*registry.Update
		for range 1 + rng.IntN(100) {
			u := all[rng.IntN(len(all))].Clone()
			u.Revision = int64(op)
			u.Instances = nil
			for i := range rng.IntN(60) { // up to ~8 KB: overflow pages
				u.Instances = append(u.Instances, inst(u.Service, fmt.Sprintf("x%02d", i), i))
			}
			batch = append(batch, u)
			smodel[u.Service] = u
		}
		if err := s.SaveSnapshot(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if op%6 == 5 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpenStore(t, snapPath, quiet())
			var want []*registry.Update
			for _, u := range smodel {
				want = append(want, u)
			}
			if err := checkEntries(s, want); err != nil {
				t.Fatalf("after %d saves, reopened: %v", op+1, err)
			}
		}
	}
	s.Close()
}

// TestOpenPanicReleasesLock: when bbolt panics inside its Open (here on a
// freelist page of the wrong type, which precheck would catch first), the
// lock is released although bbolt's mapping keeps the file open.
func TestOpenPanicReleasesLock(t *testing.T) {
	f := fixtures(t)[1]
	data := bytes.Clone(f.data)
	m0, _ := readMeta(data, 0)
	m1, _ := readMeta(data, 4096)
	freelist := m0.freelist
	if m1.txid > m0.txid {
		freelist = m1.freelist
	}
	binary.NativeEndian.PutUint16(data[freelist*4096+8:], 0) // no page type
	path := filepath.Join(t.TempDir(), "snap.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(path, quiet()); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "freelist") {
		t.Errorf("OpenStore = %v, want ErrCorrupt from the check of the freelist", err)
	}
	var file *os.File
	opts := &bolt.Options{Timeout: time.Second, OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}}
	if _, err := openBolt(path, opts, &file); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "invalid freelist page") {
		t.Fatalf("openBolt = %v, want ErrCorrupt from bbolt's panic", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 200 * time.Millisecond, ReadOnly: true})
	if err != nil {
		t.Fatalf("the file is still locked after the panic: %v", err)
	}
	db.Close()
}
