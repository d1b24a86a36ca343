package zk_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/internal/harness/faultproxy"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// callsInFlight counts the goroutines blocked in go-zookeeper calls that a
// Registry started and stopped waiting for.
func callsInFlight() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "zk.(*Registry).do.func")
}

// While ZooKeeper is unreachable behind a partition (the TCP connection is
// accepted, the handshake hangs), a call that gives up on its ctx must not
// leave a request queued on the connection behind it. go-zookeeper keeps such
// requests until the handshake times out (10 x 2/3 of the session timeout,
// about 66 s by default) and sends them all if it completes: a chain probing
// Ping every second and watchers retrying their reads would pile up a
// goroutine and a stale request per attempt.
func TestOutageLeavesNoCallsBehind(t *testing.T) {
	srv := server(t)
	px, err := faultproxy.Start(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	r := newRegistry(t, nil, zk.Config{Servers: []string{px.Addr()}, Timeout: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err := r.Ping(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	w, err := r.Watch(ctxT(t, time.Minute), "outage")
	if err != nil {
		t.Fatal(err)
	}
	n := newNexter(t, w)
	n.until(recoveryTimeout, "outage")

	px.Partition()
	px.Sever()
	testutil.WaitFor(t, recoveryTimeout, "watcher reports the outage", func() string {
		select {
		case res := <-n.ch:
			if errors.Is(res.err, registry.ErrUnavailable) {
				return ""
			}
		default:
		}
		return "no error yet"
	})
	base := callsInFlight()
	const probes = 40
	for range probes {
		if err := r.Ping(ctxT(t, 20*time.Millisecond)); !errors.Is(err, registry.ErrUnavailable) {
			t.Fatalf("Ping while down = %v, want ErrUnavailable", err)
		}
		if _, err := r.GetService(ctxT(t, 20*time.Millisecond), "outage"); !errors.Is(err, registry.ErrUnavailable) {
			t.Fatalf("GetService while down = %v, want ErrUnavailable", err)
		}
	}
	// The watcher retried its reads all along (every 50ms + 50ms timeout).
	if got := callsInFlight(); got-base > 4 {
		t.Errorf("%d calls left waiting on the connection after %d probes while down (%d before): they pile up until the handshake ends", got, 2*probes, base)
	}
	px.Heal()
	testutil.WaitFor(t, recoveryTimeout, "Ping after the outage", func() string {
		if err := r.Ping(ctxT(t, time.Second)); err != nil {
			return err.Error()
		}
		return ""
	})
	n.until(recoveryTimeout, "outage")
}

// A registration made and abandoned while ZooKeeper is unreachable must not
// appear, even briefly, once the server is back: the keeper's attempt that
// was waiting for the connection is out of date by then.
func TestDeregisteredWhileDownNeverAppears(t *testing.T) {
	srv := server(t)
	px, err := faultproxy.Start(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	root := uniqueRoot(t)
	r := newRegistry(t, nil, zk.Config{Namespace: root, Servers: []string{px.Addr()}})
	in := instance("ghost", "g1", 7600)
	if err := r.Ping(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	o := srv.Connect(t, 2*time.Second)
	p := nodePath(root, in)
	ok, _, created, err := o.ExistsW(p)
	if err != nil || ok {
		t.Fatalf("ExistsW %s = %v, %v; want a watch on a missing node", p, ok, err)
	}

	// A partition with the connection cut: go-zookeeper reconnects, the
	// proxy accepts, and the handshake hangs until Heal.
	px.Partition()
	px.Sever()
	testutil.WaitFor(t, recoveryTimeout, "connection lost", func() string {
		if err := r.Ping(ctxT(t, 50*time.Millisecond)); !errors.Is(err, registry.ErrUnavailable) {
			return "Ping still answers"
		}
		return ""
	})
	if err := r.Register(ctxT(t, 200*time.Millisecond), in); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Register while down = %v, want ErrUnavailable", err)
	}
	if err := r.Deregister(ctxT(t, 200*time.Millisecond), in); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Deregister while down = %v, want ErrUnavailable", err)
	}
	px.Heal()
	// Once this Deregister returns, the keeper has finished every earlier
	// attempt (it works through them in order).
	if err := r.Deregister(ctxT(t, recoveryTimeout), in); err != nil {
		t.Fatalf("Deregister after the outage: %v", err)
	}
	if regs := r.Registrations(); len(regs) != 0 {
		t.Errorf("Registrations after Deregister = %s, want none", describeRegs(regs))
	}
	select {
	case ev := <-created:
		t.Errorf("the deregistered instance's node appeared after the outage: %v %v", ev.Type, ev.Path)
	default:
	}
	if ok, _, err := o.Exists(p); err != nil || ok {
		t.Errorf("Exists %s after Deregister = %v, %v; want false", p, ok, err)
	}
}
