package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/regchain/regchain/registry"
)

func TestStoreRoundTrip(t *testing.T) {
	path := tempPath(t, "snap.db")
	s := mustOpenStore(t, path, quiet())
	confirmed := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	a := &registry.Update{Service: "a", Source: "etcd", Revision: 42, Time: confirmed,
		Instances: []*registry.Instance{inst("a", "a2", 2), inst("a", "a1", 1)}}
	a.Instances[0].Metadata["unicode"] = "ünï çødé"
	a.Instances[0].Metadata["empty"] = ""
	a.Instances[1].Metadata = nil
	a.Instances[1].Version = ""
	empty := &registry.Update{Service: "b.empty", Source: "consul", Revision: -1} // authoritatively empty, zero Time
	before := time.Now()
	if err := s.SaveSnapshot(ctxT(t), []*registry.Update{a, empty}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if a.Instances[0].ID != "a2" {
		t.Errorf("SaveSnapshot reordered the caller's instances")
	}
	check := func(s *Store) {
		t.Helper()
		got, err := s.LoadSnapshot(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Update.Service != "a" || got[1].Update.Service != "b.empty" {
			t.Fatalf("LoadSnapshot = %v, want entries a and b.empty in order", got)
		}
		for i, want := range []*registry.Update{a, empty} {
			e := got[i]
			if err := sameUpdate(e.Update, want); err != nil {
				t.Error(err)
			}
			if e.Saved.Before(before.Truncate(0)) || e.Saved.After(after) {
				t.Errorf("%s: Saved = %v, want between %v and %v", want.Service, e.Saved, before, after)
			}
			if !slices.IsSortedFunc(e.Update.Instances, func(x, y *registry.Instance) int { return strings.Compare(x.ID, y.ID) }) {
				t.Errorf("%s: instances not sorted by ID", want.Service)
			}
		}
		if len(got[1].Update.Instances) != 0 || !got[1].Update.Time.IsZero() {
			t.Errorf("empty entry = %+v, want no instances and a zero Time", got[1].Update)
		}
		now := time.Now()
		if age := got[0].Age(now); age != now.Sub(confirmed) {
			t.Errorf("Age = %v, want %v", age, now.Sub(confirmed))
		}
		if age := got[1].Age(now); age < 0 || age > now.Sub(before) {
			t.Errorf("Age of an entry without Time = %v, want the time since it was saved", age)
		}
		// The caller owns what it gets.
		a1, a2 := got[0].Update.Instances[0], got[0].Update.Instances[1]
		a2.Metadata["weight"] = "mutated"
		a1.Endpoints = append(a1.Endpoints, "grpc://x:1")
		if a2.Endpoints[0] == "grpc://x:1" {
			t.Errorf("appending to one instance's endpoints changed another's")
		}
	}
	check(s)
	check(s) // the mutations did not reach the file
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpenStore(t, path, quiet())
	defer s.Close()
	check(s)
}

func TestStoreReplaces(t *testing.T) {
	s := mustOpenStore(t, tempPath(t, "snap.db"), quiet())
	defer s.Close()
	first := fleet(3, 2)
	if err := s.SaveSnapshot(ctxT(t), first); err != nil {
		t.Fatal(err)
	}
	b2 := first[1].Clone()
	b2.Instances = b2.Instances[:1]
	b2.Revision++
	b3 := b2.Clone()
	b3.Source = "zookeeper"
	// Two updates of one service in a batch: the last one wins.
	if err := s.SaveSnapshot(ctxT(t), []*registry.Update{b2, b3}); err != nil {
		t.Fatal(err)
	}
	if err := checkEntries(s, []*registry.Update{first[0], b3, first[2]}); err != nil {
		t.Error(err)
	}
	if err := s.SaveSnapshot(ctxT(t), nil); err != nil {
		t.Errorf("SaveSnapshot(nil) = %v", err)
	}
}

func TestStoreSaveInvalid(t *testing.T) {
	s := mustOpenStore(t, tempPath(t, "snap.db"), quiet())
	defer s.Close()
	good := fleet(2, 2)
	if err := s.SaveSnapshot(ctxT(t), good); err != nil {
		t.Fatal(err)
	}
	mod := func(f func(u *registry.Update)) *registry.Update {
		u := fleet(1, 2)[0]
		u.Service = good[0].Service // would replace an entry if written
		for _, in := range u.Instances {
			in.Name = u.Service
		}
		f(u)
		return u
	}
	cases := map[string]*registry.Update{
		"nil":           nil,
		"bad service":   mod(func(u *registry.Update) { u.Service = "a/b" }),
		"nil instance":  mod(func(u *registry.Update) { u.Instances[1] = nil }),
		"bad instance":  mod(func(u *registry.Update) { u.Instances[1].Endpoints = nil }),
		"other service": mod(func(u *registry.Update) { u.Instances[1].Name = "other" }),
		"duplicate id":  mod(func(u *registry.Update) { u.Instances[1].ID = u.Instances[0].ID }),
		"long source":   mod(func(u *registry.Update) { u.Source = strings.Repeat("s", maxSourceLen+1) }),
	}
	for name, u := range cases {
		// A valid update in the same batch is not written either.
		valid := mod(func(*registry.Update) {})
		err := s.SaveSnapshot(ctxT(t), []*registry.Update{valid, u})
		if !errors.Is(err, registry.ErrInvalid) || err.Error() == registry.ErrInvalid.Error() {
			t.Errorf("%s: SaveSnapshot = %v, want a descriptive ErrInvalid", name, err)
		}
	}
	if err := checkEntries(s, good); err != nil {
		t.Errorf("after invalid saves: %v", err)
	}
}

func TestStoreContextAndClose(t *testing.T) {
	s := mustOpenStore(t, tempPath(t, "snap.db"), quiet())
	good := fleet(2, 1)
	if err := s.SaveSnapshot(ctxT(t), good); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel()
	if err := s.SaveSnapshot(ctx, fleet(3, 3)); !errors.Is(err, context.Canceled) {
		t.Errorf("SaveSnapshot with a cancelled ctx = %v, want context.Canceled", err)
	}
	if _, err := s.LoadSnapshot(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("LoadSnapshot with a cancelled ctx = %v, want context.Canceled", err)
	}
	if err := checkEntries(s, good); err != nil {
		t.Error(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := s.SaveSnapshot(ctxT(t), good); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("SaveSnapshot after Close = %v, want ErrClosed", err)
	}
	if _, err := s.LoadSnapshot(ctxT(t)); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("LoadSnapshot after Close = %v, want ErrClosed", err)
	}
}

func TestStoreConcurrent(t *testing.T) {
	s := mustOpenStore(t, tempPath(t, "snap.db"), quiet())
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		wg.Go(func() {
			for i := range 5 {
				u := fleet(1, 3)[0]
				u.Service = fmt.Sprintf("w%d", w)
				for _, in := range u.Instances {
					in.Name = u.Service
				}
				u.Revision = int64(i)
				if err := s.SaveSnapshot(ctxT(t), []*registry.Update{u}); err != nil {
					errs <- err
				}
				if _, err := s.LoadSnapshot(ctxT(t)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.LoadSnapshot(ctxT(t))
	if err != nil || len(got) != 4 {
		t.Fatalf("LoadSnapshot = %d entries, %v; want 4", len(got), err)
	}
	for _, e := range got {
		if e.Update.Revision != 4 {
			t.Errorf("%s: revision %d, want 4 (the last save)", e.Update.Service, e.Update.Revision)
		}
	}
	// Close waits for the transactions in progress; later calls fail
	// cleanly with ErrClosed.
	var closeWG sync.WaitGroup
	for range 3 {
		closeWG.Go(func() {
			if err := s.SaveSnapshot(ctxT(t), fleet(1, 1)); err != nil && !errors.Is(err, registry.ErrClosed) {
				t.Errorf("SaveSnapshot racing Close = %v", err)
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	closeWG.Wait()
}

func TestStoreSkipsUndecodableEntries(t *testing.T) {
	path := tempPath(t, "snap.db")
	s := mustOpenStore(t, path, quiet())
	good := fleet(3, 2)
	if err := s.SaveSnapshot(ctxT(t), good); err != nil {
		t.Fatal(err)
	}
	s.Close()
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketSnapshot))
		v := bytes.Clone(b.Get([]byte(good[1].Service)))
		v[len(v)/2] ^= 0x40
		b.Put([]byte(good[1].Service), v)
		return b.Put([]byte("bad/key"), v)
	})
	var logs bytes.Buffer
	s = mustOpenStore(t, path, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer s.Close()
	if err := checkEntries(s, []*registry.Update{good[0], good[2]}); err != nil {
		t.Error(err)
	}
	for _, words := range []string{"service=" + good[1].Service, "checksum", `service=bad/key`} {
		if !strings.Contains(logs.String(), words) {
			t.Errorf("log does not mention %q:\n%s", words, logs.String())
		}
	}
	// Load names what it skipped.
	entries, damaged, err := s.Load(ctxT(t))
	if err != nil || len(entries) != 2 {
		t.Fatalf("Load = %d entries, %v; want 2", len(entries), err)
	}
	if want := []string{"bad/key", good[1].Service}; !slices.Equal(damaged, want) {
		t.Errorf("Load damaged = %q, want %q", damaged, want)
	}
}
