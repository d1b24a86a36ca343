package file

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// FuzzDecodeEntry feeds the snapshot entry decoder bodies with a valid CRC
// appended, so that the fuzzer gets past the checksum into the parser, and
// the raw bytes too. It must never panic; what it accepts must survive an
// encode and decode round trip unchanged.
func FuzzDecodeEntry(f *testing.F) {
	saved := time.Unix(1700000000, 5)
	for _, u := range append(fleet(2, 3), &registry.Update{Service: "empty", Source: "consul"}) {
		ins, err := checkUpdate(u)
		if err != nil {
			f.Fatal(err)
		}
		data := appendEntry(nil, saved, u, ins)
		f.Add(u.Service, data[:len(data)-4])
	}
	f.Add("x", []byte{})
	f.Add("x", []byte{entryFormat, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, service string, body []byte) {
		if _, err := decodeEntry(service, body); err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("raw: error %v does not wrap ErrInvalid", err)
			}
			testutil.SafeMessage(t, "decodeEntry", err.Error())
		}
		data := binary.LittleEndian.AppendUint32(bytes.Clone(body), entrySum(service, body))
		e, err := decodeEntry(service, data)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			testutil.SafeMessage(t, "decodeEntry", err.Error())
			return
		}
		if registry.ValidateName(service) != nil || len(e.Update.Source) > maxSourceLen {
			t.Fatalf("decoded an entry of a bad service %q or source %q", service, e.Update.Source)
		}
		for _, in := range e.Update.Instances {
			if in.Name != service || validateStored(in) != nil {
				t.Fatalf("decoded a bad instance %s", in)
			}
		}
		again, err := decodeEntry(service, appendEntry(nil, e.Saved, e.Update, e.Update.Instances))
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		if err := sameUpdate(again.Update, e.Update); err != nil || !again.Saved.Equal(e.Saved) {
			t.Fatalf("round trip changed the entry: %v (saved %v, then %v)", err, e.Saved, again.Saved)
		}
	})
}

// FuzzDecodeRecord: the Registry's record decoder never panics, and what it
// accepts is a valid instance filed under its own key.
func FuzzDecodeRecord(f *testing.F) {
	for _, in := range []*registry.Instance{inst("svc", "a1", 1), inst("go.micro.srv.greeter", "f3b0-1", 2)} {
		v, err := registry.Marshal(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(recordKey(in.Name, in.ID), v)
	}
	f.Add([]byte("svc/a1"), []byte(`{"id":"a1","name":"svc","endpoints":["grpc://h:1"],"metadata":null}`))
	f.Add([]byte("noslash"), []byte(`{}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		in, err := decodeRecord(key, value)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			testutil.SafeMessage(t, "decodeRecord", err.Error())
			return
		}
		if string(recordKey(in.Name, in.ID)) != string(key) {
			t.Fatalf("record under %q decoded as %s", key, in.Key())
		}
		v, err := registry.Marshal(in)
		if err != nil {
			t.Fatalf("decoded an instance Register would refuse: %v", err)
		}
		again, err := decodeRecord(key, v)
		if err != nil || !again.Equal(in) {
			t.Fatalf("round trip: %v, %v; want %v", again, err, in)
		}
	})
}

// FuzzOpen opens fuzzed files as a Store and as a Registry and uses them:
// no panic, no hang, and only the errors a damaged file may give.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	s := mustOpenStore(f, filepath.Join(dir, "snap.db"), quiet())
	if err := s.SaveSnapshot(context.Background(), fleet(4, 2)); err != nil {
		f.Fatal(err)
	}
	s.Close()
	r := mustOpen(f, filepath.Join(dir, "reg.db"), quiet())
	for i := range 4 {
		if err := r.Register(context.Background(), inst("svc", string(rune('a'+i)), i)); err != nil {
			f.Fatal(err)
		}
	}
	r.Close()
	for _, name := range []string{"snap.db", "reg.db"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "x.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err := OpenStore(path, quiet()); !acceptable(err) {
			t.Fatalf("OpenStore: %v", err)
		} else if err != nil {
			testutil.SafeMessage(t, "OpenStore", err.Error())
		} else {
			if _, err := s.LoadSnapshot(ctx); !acceptable(err) {
				t.Fatalf("LoadSnapshot: %v", err)
			}
			if err := s.SaveSnapshot(ctx, fleet(1, 1)); !acceptable(err) {
				t.Fatalf("SaveSnapshot: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		if r, err := Open(path, quiet()); !acceptable(err) {
			t.Fatalf("Open: %v", err)
		} else if err == nil {
			if _, err := r.ListServices(ctx); err != nil {
				t.Fatalf("ListServices: %v", err)
			}
			if err := r.Register(ctx, inst("svc", "z", 9)); !acceptable(err) {
				t.Fatalf("Register: %v", err)
			}
			if err := r.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
	})
}

// TestDecodeErrorsQuoteBounded: what a damaged file holds comes back in
// errors bounded and escaped, never whole.
func TestDecodeErrorsQuoteBounded(t *testing.T) {
	hostile := bytes.Repeat([]byte("\x1b]0;owned\x07\n"), 1<<13)
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		msg := err.Error()
		if len(msg) > 400 || bytes.ContainsAny([]byte(msg), "\x1b\x07\n") {
			t.Errorf("%s: error is %d bytes, or holds control characters: %.200q", what, len(msg), msg)
		}
	}
	_, err := decodeRecord(hostile, []byte(`{}`))
	check("record key", err)
	_, err = decodeRecord(append([]byte("svc/"), hostile...), []byte(`{"id":"x","name":"svc","endpoints":["grpc://h:1"]}`))
	check("record under another key", err)
	_, err = decodeEntry(string(hostile), []byte{entryFormat})
	check("entry", err)
}
