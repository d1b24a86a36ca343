package main

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/registry"
)

func TestRepairEtcd(t *testing.T) {
	srv, err := embedetcd.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	reg, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint()}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	url := "etcd://" + srv.Endpoint()
	shown := func(name, id string) *registry.Instance {
		got, _ := reg.GetService(ctxT(t), name)
		for _, in := range got {
			if in.ID == id {
				return in
			}
		}
		return nil
	}

	t.Run("register until interrupted", func(t *testing.T) {
		b := start(t, "-registry", url, "register", "greeter", "g-9", "grpc://10.0.0.9:9000", "version=v2", "zone=eu-1")
		b.waitLines(t, 1, 10*time.Second)
		in := shown("greeter", "g-9")
		if in == nil || in.Version != "v2" || in.Metadata["zone"] != "eu-1" || !slices.Equal(in.Endpoints, []string{"grpc://10.0.0.9:9000"}) {
			t.Fatalf("registered instance = %+v", in)
		}
		wantContains(t, "stdout", b.stdout.String(), "registered greeter/g-9", "until interrupted")
		b.cancel()
		if code := b.wait(t, 10*time.Second); code != exitOK {
			t.Fatalf("exit %d after interrupt; stderr: %s", code, b.stderr.String())
		}
		if shown("greeter", "g-9") != nil {
			t.Error("still registered after the interrupt")
		}
		wantContains(t, "stdout", b.stdout.String(), "deregistered greeter/g-9")
	})

	t.Run("deregister", func(t *testing.T) {
		// A stale entry whose owner is gone (written without a lease): the
		// case manual repair is for. (An entry whose owner is alive is put
		// back by its owner.)
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		if _, err := cli.Put(ctxT(t), "/microservices/zombie/z-1", `{"id":"z-1","name":"zombie","version":"","metadata":null,"endpoints":["http://10.0.0.1:1"]}`); err != nil {
			t.Fatal(err)
		}
		other := reg
		if got, _ := other.GetService(ctxT(t), "zombie"); len(got) != 1 {
			t.Fatalf("zombie = %v before the repair, want z-1", got)
		}
		r := wantCode(t, regctl(t, "-registry", url, "deregister", "zombie", "z-1"), exitOK)
		wantContains(t, "stdout", r.stdout, "deregistered zombie/z-1")
		if got, _ := other.GetService(ctxT(t), "zombie"); len(got) != 0 {
			t.Errorf("zombie still shows %v", got)
		}
		r = wantCode(t, regctl(t, "-registry", url, "deregister", "zombie", "z-1"), exitFail)
		wantContains(t, "stderr", r.stderr, "not found", "zombie/z-1 is not registered")
	})

	t.Run("usage", func(t *testing.T) {
		wantCode(t, regctl(t, "-registry", url, "register", "greeter", "g-1"), exitUsage)
		wantCode(t, regctl(t, "-registry", url, "register", "greeter", "g-1", "nonsense"), exitUsage)
		wantCode(t, regctl(t, "-registry", url, "register", "{bad"), exitUsage)
		wantCode(t, regctl(t, "-registry", url, "deregister", "greeter"), exitUsage)
		r := wantCode(t, regctl(t, "-registry", url, "register", "bad name", "g-1", "grpc://x:1"), exitFail)
		wantContains(t, "stderr", r.stderr, "invalid")
	})
}

func TestRepairFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	url := "file://" + path
	r := wantCode(t, regctl(t, "-registry", url, "register", `{"id":"b-1","name":"billing","version":"v1","endpoints":["http://10.0.0.3:8080"]}`), exitOK)
	wantContains(t, "stdout", r.stdout, "registered billing/b-1")
	r = wantCode(t, regctl(t, "-registry", url, "get", "billing"), exitOK)
	wantContains(t, "get", r.stdout, "b-1", "v1", "http://10.0.0.3:8080")
	wantCode(t, regctl(t, "-registry", url, "deregister", "billing", "b-1"), exitOK)
	wantCode(t, regctl(t, "-registry", url, "get", "billing"), exitFail)
}
