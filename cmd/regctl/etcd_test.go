package main

import (
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/registry"
)

// fleet is what the registry tests register: two services, one instance
// with metadata and two endpoints, one bare.
func fleet() []*registry.Instance {
	return []*registry.Instance{
		{ID: "g-1", Name: "greeter", Version: "v1.2.0",
			Endpoints: []string{"grpc://10.0.0.1:9000", "http://10.0.0.1:8000"},
			Metadata:  map[string]string{"zone": "eu-1", "weight": "10", "note": "two words"}},
		{ID: "g-2", Name: "greeter", Version: "v1.3.0", Endpoints: []string{"grpc://10.0.0.2:9000"}},
		{ID: "b-1", Name: "billing", Endpoints: []string{"http://10.0.0.3:8080"}},
	}
}

func TestEtcd(t *testing.T) {
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
	for _, in := range fleet() {
		if err := reg.Register(ctxT(t), in); err != nil {
			t.Fatal(err)
		}
	}
	url := "etcd://" + srv.Endpoint()

	t.Run("list", func(t *testing.T) {
		r := wantCode(t, regctl(t, "-registry", url, "list"), 0)
		if want := "billing\ngreeter\n"; r.stdout != want {
			t.Errorf("stdout = %q, want %q", r.stdout, want)
		}
	})

	t.Run("list -json", func(t *testing.T) {
		r := wantCode(t, regctl(t, "-registry", url, "-json", "list"), 0)
		var got []string
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v:\n%s", err, r.stdout)
		}
		if want := []string{"billing", "greeter"}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})

	t.Run("get", func(t *testing.T) {
		r := wantCode(t, regctl(t, "-registry", url, "get", "greeter"), 0)
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("got %d lines, want a header and 2 instances:\n%s", len(lines), r.stdout)
		}
		for i, want := range [][]string{
			{"ID", "VERSION", "ENDPOINTS", "METADATA"},
			{"g-1", "v1.2.0", "grpc://10.0.0.1:9000,http://10.0.0.1:8000", `note="two words" weight=10 zone=eu-1`},
			{"g-2", "v1.3.0", "grpc://10.0.0.2:9000", "-"},
		} {
			wantContains(t, "line "+lines[i], lines[i], want...)
			if !strings.HasPrefix(lines[i], want[0]+" ") {
				t.Errorf("line %q does not start with %q", lines[i], want[0])
			}
		}
	})

	t.Run("get -json", func(t *testing.T) {
		// Flags after the command work too.
		r := wantCode(t, regctl(t, "-registry", url, "get", "-json", "greeter"), 0)
		var got []*registry.Instance
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v:\n%s", err, r.stdout)
		}
		if want := fleet()[:2]; !registry.EqualInstances(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		// Kratos' ServiceInstance field names.
		var raw []map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"id", "name", "version", "metadata", "endpoints"} {
			if _, ok := raw[0][k]; !ok {
				t.Errorf("instance JSON has no %q field: %s", k, r.stdout)
			}
		}
	})

	t.Run("get unknown service", func(t *testing.T) {
		r := wantCode(t, regctl(t, "-registry", url, "get", "nosuch"), 1)
		wantContains(t, "stderr", r.stderr, `get "nosuch" on `+url+": not found:")
		if r.stdout != "" {
			t.Errorf("stdout = %q, want nothing", r.stdout)
		}
	})

	t.Run("get invalid name", func(t *testing.T) {
		r := wantCode(t, regctl(t, "-registry", url, "get", "bad/name"), 1)
		wantContains(t, "stderr", r.stderr, ": invalid:")
	})

	t.Run("namespace", func(t *testing.T) {
		r := wantCode(t, regctl(t, "-registry", url+"?namespace=/elsewhere", "list"), 0)
		if r.stdout != "" {
			t.Errorf("another namespace lists %q, want nothing", r.stdout)
		}
		r = wantCode(t, regctl(t, "-registry", url+"?namespace=/microservices/", "list"), 0)
		if want := "billing\ngreeter\n"; r.stdout != want {
			t.Errorf("the default namespace, spelt out, lists %q, want %q", r.stdout, want)
		}
	})

	t.Run("ping", func(t *testing.T) {
		r := wantCode(t, regctl(t, "-registry", url, "ping"), 0)
		wantContains(t, "stdout", r.stdout, "ok: "+url+" answered in ")
	})

	t.Run("watch -count 2", func(t *testing.T) {
		w := start(t, "-registry", url, "watch", "-count", "2", "greeter")
		first := w.waitLines(t, 1, 10*time.Second)[0]
		wantContains(t, "first update", first, " service=greeter source=etcd ", " count=2 ids=g-1,g-2")
		g3 := &registry.Instance{ID: "g-3", Name: "greeter", Version: "v1.3.0", Endpoints: []string{"grpc://10.0.0.4:9000"}}
		if err := reg.Register(ctxT(t), g3); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Deregister(ctxT(t), g3) })
		if code := w.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0; stderr:\n%s", code, w.stderr.String())
		}
		lines := w.lines()
		if len(lines) != 2 {
			t.Fatalf("got %d lines, want 2:\n%s", len(lines), w.stdout.String())
		}
		wantContains(t, "second update", lines[1], " service=greeter source=etcd ", " count=3 ids=g-1,g-2,g-3")
		// Time first, then the revision, which grows.
		if _, err := time.Parse(watchTimeLayout, strings.Fields(lines[1])[0]); err != nil {
			t.Errorf("line %q does not start with a time: %v", lines[1], err)
		}
		if rev := func(l string) string { return strings.Fields(l)[3] }; rev(lines[0]) == rev(lines[1]) {
			t.Errorf("revision did not change between %q and %q", lines[0], lines[1])
		}
	})

	t.Run("watch all -json", func(t *testing.T) {
		w := start(t, "-registry", url, "-json", "-count", "2", "watch")
		if code := w.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0; stderr:\n%s", code, w.stderr.String())
		}
		var services []string
		for _, l := range w.lines() {
			var u jsonUpdate
			if err := json.Unmarshal([]byte(l), &u); err != nil {
				t.Fatalf("%v: %s", err, l)
			}
			if u.Source != "etcd" || u.Revision == 0 || u.Time.IsZero() || len(u.Instances) == 0 {
				t.Errorf("update %s lacks source, revision, time or instances", l)
			}
			services = append(services, u.Service)
		}
		slices.Sort(services)
		if want := []string{"billing", "greeter"}; !slices.Equal(services, want) {
			t.Errorf("updates of %q, want one of each of %q", services, want)
		}
	})

	t.Run("watch until interrupted", func(t *testing.T) {
		w := start(t, "-registry", url, "watch", "billing")
		w.waitLines(t, 1, 10*time.Second)
		w.cancel() // what main does on SIGINT
		if code := w.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0; stderr:\n%s", code, w.stderr.String())
		}
		if s := w.stderr.String(); s != "" {
			t.Errorf("stderr = %q, want nothing", s)
		}
	})
}

// A registry that does not answer fails within -timeout, naming the
// sentinel.
func TestEtcdUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	for _, cmd := range [][]string{{"ping"}, {"list"}, {"get", "greeter"}} {
		t.Run(cmd[0], func(t *testing.T) {
			begin := time.Now()
			r := wantCode(t, regctl(t, append([]string{"-registry", "etcd://" + addr, "-timeout", "300ms"}, cmd...)...), 1)
			wantContains(t, "stderr", r.stderr, "on etcd://"+addr+": unavailable:")
			if d := time.Since(begin); d > 5*time.Second {
				t.Errorf("took %v with -timeout 300ms", d)
			}
		})
	}
}
