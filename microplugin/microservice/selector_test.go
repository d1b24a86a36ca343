package microservice_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	mreg "go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/locality/nearest"
	"github.com/regchain/regchain/microplugin"
	"github.com/regchain/regchain/microplugin/microservice"
	"github.com/regchain/regchain/registry/registrytest"
)

// Ejections short enough for a test to see re-admissions; longer ones
// where a re-admission costs an attempt timeout.
var (
	shortEjection = nearest.Ejection{BaseTime: 100 * time.Millisecond, MaxTime: 400 * time.Millisecond}
	cutEjection   = nearest.Ejection{BaseTime: 300 * time.Millisecond, MaxTime: time.Second}
)

// TestNearestLevel: calls go to the client's zone only; as the zone's
// nodes die (killed: connections reset, new ones refused, but still
// registered) calls move to the region, then anywhere, without a failed
// call; when a zone node comes back, calls come back to it.
func TestNearestLevel(t *testing.T) {
	reg, nodes := fleet(t)
	a1, a2, b1, c1 := nodes[0], nodes[1], nodes[2], nodes[3]
	c, _ := newClient(t, reg, shortEjection, time.Second)
	hello := call(c, "Greeter.Hello")

	reach(t, hello, "a1", "a2")
	for i := range 40 {
		got, err := hello(context.Background())
		if err != nil || (got != "a1" && got != "a2") {
			t.Fatalf("call %d: %q, %v; want a1 or a2", i, got, err)
		}
	}
	moves(t, "a1 killed", hello, a1.kill, "a2")
	moves(t, "a2 killed too: zone a empty", hello, a2.kill, "b1")
	moves(t, "b1 killed too: region r1 empty", hello, b1.kill, c1.id)
	moves(t, "a1 back", hello, func() { a1.revive(t) }, "a1")
}

// TestNotSentRetried: an endpoint not known to be idempotent is retried
// on another node when nothing was sent (the connection was refused), and
// not when its connection broke in flight.
func TestNotSentRetried(t *testing.T) {
	reg, nodes := fleet(t)
	a1 := nodes[0]
	// No pooled connections: every call dials, so a dead node refuses.
	c, _ := newClient(t, reg, shortEjection, time.Second, client.PoolSize(0))
	write := call(c, "Greeter.Write")
	reach(t, write, "a1", "a2")
	moves(t, "a1 killed, Write", write, a1.kill, "a2")
}

// TestCutOff: a node cut off silently (traffic dropped, no reset) is
// found by its attempts timing out (ConnectionTimeout); calls move
// on without a failed call and come back once it answers again.
func TestCutOff(t *testing.T) {
	reg, nodes := fleet(t)
	a1, a2 := nodes[0], nodes[1]
	c, _ := newClient(t, reg, cutEjection, 500*time.Millisecond)
	hello := call(c, "Greeter.Hello")
	reach(t, hello, "a1", "a2")
	moves(t, "a1 cut off", hello, a1.cut, "a2")
	moves(t, "a2 cut off too", hello, a2.cut, "b1")
	moves(t, "a2 heals", hello, a2.heal, "a2")
}

// TestAttemptTimeouts: with go-micro's own per-attempt timeout (5s), a
// node cut off silently would hold each call that goes there for longer
// than its 3s deadline; AttemptTimeouts gives the first attempts of an
// idempotent endpoint a timeout learnt from its successful calls, so the
// calls move on without a failed call, and each attempt decodes into a
// response of its own (run with -race: go-micro's abandoned attempts
// decode late answers).
func TestAttemptTimeouts(t *testing.T) {
	reg, nodes := fleet(t)
	a1 := nodes[0]
	c, _ := newClient(t, reg, cutEjection, client.DefaultConnectionTimeout,
		client.Wrap(microservice.AttemptTimeouts(microservice.RetryConfig{Idempotent: []string{"Greeter.Hello"}})))
	hello := call(c, "Greeter.Hello")
	reach(t, hello, "a1", "a2")
	for range 2 * nearest.DefaultAttemptSamples { // enough successes to learn from
		if _, err := hello(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	l := testutil.StartLoad(hello, 3*time.Second)
	a1.cut()
	d := testutil.WaitFor(t, timeout, "calls move to a2", l.Only(20, "a2"))
	n, errs := l.Stop()
	t.Logf("a1 cut off: %d calls, %d failed, all on a2 within %v", n, len(errs), d)
	if len(errs) > 0 {
		t.Fatalf("failed calls: %v", errs)
	}
	a1.heal()
}

// TestSelectorRule runs the selector over a registry without servers:
// levels, filters first, ejection through Mark, retries skip what they
// tried, Reset.
func TestSelectorRule(t *testing.T) {
	mem := registrytest.NewMemory()
	defer mem.Close()
	reg := microplugin.New(mem)
	for _, n := range []struct{ id, zone, region, version string }{
		{"a1", "a", "r1", "v1"}, {"a2", "a", "r1", "v2"}, {"b1", "b", "r1", "v1"}, {"c1", "c", "r2", "v1"},
	} {
		err := reg.Register(&mreg.Service{Name: "svc", Version: n.version, Nodes: []*mreg.Node{{
			Id: n.id, Address: n.id + ":1", Metadata: map[string]string{locality.KeyZone: n.zone, locality.KeyRegion: n.region},
		}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	sel := microservice.NewSelector(selector.Registry(reg),
		microservice.WithLocality(locality.Locality{Zone: "a", Region: "r1"}),
		microservice.WithEjection(nearest.Ejection{ConsecutiveFailures: 2, BaseTime: time.Hour}))
	defer sel.Close()
	picks := func(n int, markErr error, opts ...selector.SelectOption) []string {
		t.Helper()
		seen := map[string]bool{}
		for range n {
			next, err := sel.Select("svc", opts...)
			if err != nil {
				t.Fatalf("Select: %v", err)
			}
			node, err := next()
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			seen[node.Id] = true
			sel.Mark("svc", node, markErr)
		}
		var out []string
		for id := range seen {
			out = append(out, id)
		}
		slices.Sort(out)
		return out
	}
	if got := picks(20, nil); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Errorf("healthy: %v, want [a1 a2]", got)
	}
	v1 := selector.WithFilter(selector.FilterVersion("v1"))
	if got := picks(10, nil, v1); !slices.Equal(got, []string{"a1"}) {
		t.Errorf("v1: %v, want [a1]", got)
	}
	refused := merrors.InternalServerError("go.micro.client", "connection error: dial tcp: connection refused")
	picks(2, refused, v1) // a1 ejected
	if ej := sel.Ejected(); !slices.Equal(ej, []string{"svc|a1:1"}) {
		t.Errorf("Ejected = %v, want [svc|a1:1]", ej)
	}
	if got := picks(10, nil, v1); !slices.Equal(got, []string{"b1"}) {
		t.Errorf("v1, a1 ejected: %v, want [b1]", got)
	}
	appErr := merrors.InternalServerError("greeter", "no such user")
	picks(10, appErr) // application errors are answers: a2 stays
	if got := picks(10, nil); !slices.Equal(got, []string{"a2"}) {
		t.Errorf("a1 ejected: %v, want [a2]", got)
	}
	next, _ := sel.Select("svc")
	first, _ := next()
	second, _ := next()
	if first.Id != "a2" || second.Id != "b1" {
		t.Errorf("retry: %s then %s, want a2 then b1", first.Id, second.Id)
	}
	sel.Reset("svc")
	if got := picks(20, nil); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Errorf("after Reset: %v, want [a1 a2]", got)
	}
}

func TestCallFailed(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		failed, ok bool
	}{
		{"success", nil, false, true},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), false, false},
		{"refused", merrors.InternalServerError("go.micro.client", "connection error: dial tcp: connection refused"), true, true},
		{"broken in flight", merrors.InternalServerError("go.micro.client.transport", "EOF"), true, true},
		{"timeout", merrors.Timeout("go.micro.client", "context deadline exceeded"), true, true},
		{"503", merrors.New("greeter", "busy", 503), true, true},
		{"application 500", merrors.InternalServerError("greeter", "boom"), false, true},
		{"application 404", merrors.NotFound("greeter", "no"), false, true},
		{"plain", errors.New("boom"), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if failed, ok := microservice.CallFailed(tt.err); failed != tt.failed || ok != tt.ok {
				t.Errorf("CallFailed = %v, %v; want %v, %v", failed, ok, tt.failed, tt.ok)
			}
		})
	}
}

// fakeRequest is a go-micro request, for Retry's rules.
type fakeRequest struct {
	client.Request
	endpoint string
	stream   bool
}

func (r fakeRequest) Endpoint() string { return r.endpoint }
func (r fakeRequest) Stream() bool     { return r.stream }

func TestRetryRules(t *testing.T) {
	refused := merrors.InternalServerError("go.micro.client", "connection error: dial tcp: connection refused")
	broken := merrors.InternalServerError("go.micro.client.transport", "EOF")
	timeout := merrors.Timeout("go.micro.client", "context deadline exceeded")
	retry := microservice.Retry(microservice.RetryConfig{Idempotent: []string{"Greeter.Hello", "Reader."}})
	tests := []struct {
		name     string
		endpoint string
		stream   bool
		err      error
		want     bool
	}{
		{"refused, any endpoint", "Greeter.Write", false, refused, true},
		{"refused, stream", "Greeter.Watch", true, refused, true},
		{"broken, idempotent", "Greeter.Hello", false, broken, true},
		{"broken, idempotent handler", "Reader.Get", false, broken, true},
		{"broken, other", "Greeter.Write", false, broken, false},
		{"broken, idempotent stream", "Greeter.Hello", true, broken, false},
		{"timeout, idempotent", "Greeter.Hello", false, timeout, true},
		{"timeout, other", "Greeter.Write", false, timeout, false},
		{"503, idempotent", "Greeter.Hello", false, merrors.New("greeter", "busy", 503), true},
		{"application error, idempotent", "Greeter.Hello", false, merrors.InternalServerError("greeter", "boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := retry(context.Background(), fakeRequest{endpoint: tt.endpoint, stream: tt.stream}, 0, tt.err)
			if got != tt.want || err != nil {
				t.Errorf("Retry = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, _ := retry(ctx, fakeRequest{endpoint: "Greeter.Hello"}, 0, refused); got {
		t.Error("Retry with the call's context done")
	}
}
