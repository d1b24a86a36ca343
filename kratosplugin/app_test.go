package kratosplugin_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	kratosregistry "github.com/go-kratos/kratos/v2/registry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/regchain/regchain/kratosplugin"
	"github.com/regchain/regchain/registry"

	"github.com/regchain/regchain/internal/testsupport/kratostest"
)

// instancesOf lists what d knows of name as "id@version{weight}[endpoints]".
func instancesOf(d kratosregistry.Discovery, name string) string {
	list, err := d.GetService(context.Background(), name)
	if err != nil {
		return "error: " + err.Error()
	}
	out := make([]string, len(list))
	for i, si := range list {
		eps := slices.Clone(si.Endpoints)
		slices.Sort(eps)
		out[i] = fmt.Sprintf("%s@%s{%s}%v", si.ID, si.Version, si.Metadata["weight"], eps)
	}
	return fmt.Sprint(out)
}

// wantOf is how instancesOf shows a's instance.
func wantOf(a *kratostest.App) string {
	return fmt.Sprintf("%s@v1.0.0{10}[grpc://%s http://%s]", a.ID, a.GRPCAddr, a.HTTPAddr)
}

func TestKratosAppRegistersAndDeregisters(t *testing.T) {
	mem := newMemory(t)
	p := kratosplugin.New(mem)

	one := kratostest.StartApp(t, p, "greeter", "one")
	eventually(t, "app registered", func() string {
		if got, want := instancesOf(p, "greeter"), fmt.Sprint([]string{wantOf(one)}); got != want {
			return fmt.Sprintf("got %s, want %s", got, want)
		}
		return ""
	})

	conn := kratostest.GRPCClient(t, p, "greeter")
	hc := kratostest.HTTPClient(t, p, "greeter")
	grpcCall := kratostest.GRPCCall(conn)
	httpCall := kratostest.HTTPCall(hc)
	kratostest.CallsReach(t, grpcCall, one.GRPCAddr)
	kratostest.CallsReach(t, httpCall, "one")

	two := kratostest.StartApp(t, p, "greeter", "two")
	kratostest.CallsReach(t, grpcCall, one.GRPCAddr, two.GRPCAddr)
	kratostest.CallsReach(t, httpCall, "one", "two")

	one.Stop(t)
	if got, want := instancesOf(p, "greeter"), fmt.Sprint([]string{wantOf(two)}); got != want {
		t.Fatalf("after app one stopped: %s, want %s", got, want)
	}
	kratostest.CallsOnly(t, grpcCall, two.GRPCAddr)
	kratostest.CallsOnly(t, httpCall, "two")

	two.Stop(t)
	if got := instancesOf(p, "greeter"); got != "[]" {
		t.Fatalf("after both apps stopped: %s, want []", got)
	}
}

// countingWatch counts Watch calls and the watchers still running.
type countingWatch struct {
	registry.Registry
	watches atomic.Int32
	live    atomic.Int32
}

func (c *countingWatch) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	w, err := c.Registry.Watch(ctx, name)
	if err != nil {
		return nil, err
	}
	c.watches.Add(1)
	c.live.Add(1)
	return &countedWatcher{Watcher: w, live: &c.live}, nil
}

type countedWatcher struct {
	registry.Watcher
	live    *atomic.Int32
	stopped atomic.Bool
}

func (w *countedWatcher) Stop() error {
	if w.stopped.CompareAndSwap(false, true) {
		w.live.Add(-1)
	}
	return w.Watcher.Stop()
}

// TestGRPCIdleRebuildsResolver lets a gRPC channel go idle, which closes its
// resolver (Stop on the watcher), and checks that the next call builds a new
// one (Watch again on the same service) and succeeds.
func TestGRPCIdleRebuildsResolver(t *testing.T) {
	reg := &countingWatch{Registry: newMemory(t)}
	p := kratosplugin.New(reg)
	one := kratostest.StartApp(t, p, "greeter", "one")

	conn := kratostest.GRPCClient(t, p, "greeter", grpc.WithIdleTimeout(200*time.Millisecond))
	grpcCall := kratostest.GRPCCall(conn)
	kratostest.CallsReach(t, grpcCall, one.GRPCAddr)

	for round := 1; round <= 2; round++ {
		eventually(t, "channel idle, resolver closed", func() string {
			if s := conn.GetState(); s != connectivity.Idle {
				return fmt.Sprintf("state %v", s)
			}
			if n := reg.live.Load(); n != 0 {
				return fmt.Sprintf("%d watchers still running", n)
			}
			return ""
		})
		kratostest.MustCall(t, "after idle", 1, grpcCall, one.GRPCAddr)
		if n := reg.watches.Load(); n != int32(round+1) {
			t.Fatalf("round %d: %d Watch calls, want %d", round, n, round+1)
		}
	}
}
