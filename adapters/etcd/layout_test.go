package etcd

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// The warnings of the package doc's "Two layouts", against a real etcd:
// each test has a server of its own, since the default namespaces are
// shared by every registry that uses them.

const (
	hintHere  = "the namespace holds records in the go-micro etcd plugin's layout"
	hintMicro = "the go-micro etcd plugin's namespace"
	hintKrato = "Kratos' and regchain's namespace"
)

// writer registers greeter-1 and greeter-2 in the given layout and
// namespace, as a fleet would.
func writer(t *testing.T, endpoint string, codec Codec, ns string) {
	t.Helper()
	cfg := testConfig(t, endpoint)
	cfg.Codec, cfg.Namespace = codec, ns
	w := newRegistry(t, cfg)
	for i, id := range []string{"greeter-1", "greeter-2"} {
		if err := w.Register(ctxT(t, 5*time.Second), instance("greeter", id, 9000+i)); err != nil {
			t.Fatal(err)
		}
	}
}

// reader returns a registry whose log is recorded.
func reader(t *testing.T, endpoint string, codec Codec, ns string) (*Registry, *logRecorder) {
	t.Helper()
	var rec *logRecorder
	cfg := testConfig(t, endpoint)
	cfg.Codec, cfg.Namespace, cfg.Logger = codec, ns, testLogger(t, &rec)
	return newRegistry(t, cfg), rec
}

func notFound(t *testing.T, r *Registry) {
	t.Helper()
	if _, err := r.GetService(ctxT(t, 5*time.Second), "greeter"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("GetService = %v, want ErrNotFound", err)
	}
}

// A default registry over go-micro records in its own namespace: one
// warning naming microplugin.EtcdCodec, not one "malformed" per record.
func TestLayoutMicroRecordsHere(t *testing.T) {
	srv := etcdtest.Start(t)
	writer(t, srv.Endpoint(), microCodec{}, MicroNamespace)
	r, rec := reader(t, srv.Endpoint(), KratosCodec{}, MicroNamespace)
	for range 3 {
		notFound(t, r)
	}
	if _, err := r.ListServices(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := rec.count(hintHere); n != 1 {
		t.Errorf("%d warnings about go-micro records, want 1", n)
	}
	if n := rec.count("malformed"); n != 0 {
		t.Errorf("%d malformed-record warnings for go-micro records, want 0", n)
	}
}

// A default registry (/microservices) while the go-micro fleet is under
// /micro/registry: a read that finds nothing warns once, by GetService or
// by a watch; a registry whose namespace holds the service does not.
func TestLayoutMicroFleetElsewhere(t *testing.T) {
	srv := etcdtest.Start(t)
	writer(t, srv.Endpoint(), microCodec{}, "")
	t.Run("GetService", func(t *testing.T) {
		r, rec := reader(t, srv.Endpoint(), KratosCodec{}, "")
		notFound(t, r)
		testutil.WaitFor(t, 10*time.Second, "warning", func() string {
			if rec.count(hintMicro) == 0 {
				return "none yet"
			}
			return ""
		})
		for range 3 {
			notFound(t, r)
		}
		if n := rec.count(hintMicro); n != 1 || rec.count("microplugin.EtcdCodec") != 1 {
			t.Errorf("%d warnings naming the go-micro namespace, want 1 (naming microplugin.EtcdCodec)", n)
		}
	})
	t.Run("Watch", func(t *testing.T) {
		r, rec := reader(t, srv.Endpoint(), KratosCodec{}, "")
		w, err := r.Watch(context.Background(), "greeter")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		if u, err := w.Next(); err != nil || len(u.Instances) != 0 {
			t.Fatalf("Next = %v, %v; want an empty state", u, err)
		}
		testutil.WaitFor(t, 10*time.Second, "warning", func() string {
			if rec.count(hintMicro) != 1 {
				return "none yet"
			}
			return ""
		})
	})
	t.Run("found", func(t *testing.T) {
		r, rec := reader(t, srv.Endpoint(), microCodec{}, "")
		if ins, err := r.GetService(ctxT(t, 5*time.Second), "greeter"); err != nil || len(ins) != 2 {
			t.Fatalf("GetService = %v, %v", ins, err)
		}
		if _, err := r.GetService(ctxT(t, 5*time.Second), "absent"); !errors.Is(err, registry.ErrNotFound) {
			t.Fatal(err)
		}
		// The look (under /microservices) finds nothing: no warning. Wait
		// for it by a registry that does warn, started after.
		r2, rec2 := reader(t, srv.Endpoint(), KratosCodec{}, "")
		notFound(t, r2)
		testutil.WaitFor(t, 10*time.Second, "the other registry's warning", func() string {
			if rec2.count(hintMicro) != 1 {
				return "none yet"
			}
			return ""
		})
		if n := rec.count(hintKrato) + rec.count(hintHere); n != 0 {
			t.Errorf("%d warnings from a registry that reads its fleet", n)
		}
	})
}

// The converse: a go-micro layout registry (/micro/registry) while the records
// are Kratos' and regchain's, under /microservices.
func TestLayoutRegchainFleetElsewhere(t *testing.T) {
	srv := etcdtest.Start(t)
	writer(t, srv.Endpoint(), KratosCodec{}, "")
	r, rec := reader(t, srv.Endpoint(), microCodec{}, "")
	notFound(t, r)
	testutil.WaitFor(t, 10*time.Second, "warning", func() string {
		if rec.count(hintKrato) == 0 {
			return "none yet"
		}
		return ""
	})
	for range 3 {
		notFound(t, r)
	}
	if n := rec.count(hintKrato); n != 1 {
		t.Errorf("%d warnings, want 1", n)
	}
}
