package microplugin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/logger"
	mreg "go-micro.dev/v4/registry"

	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// logRecorder is a go-micro logger that keeps the messages.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Init(...logger.Option) error                 { return nil }
func (l *logRecorder) Options() logger.Options                     { return logger.Options{} }
func (l *logRecorder) Fields(map[string]interface{}) logger.Logger { return l }
func (l *logRecorder) String() string                              { return "recorder" }
func (l *logRecorder) Log(level logger.Level, v ...interface{})    { l.add(level, fmt.Sprint(v...)) }
func (l *logRecorder) Logf(level logger.Level, f string, v ...interface{}) {
	l.add(level, fmt.Sprintf(f, v...))
}

func (l *logRecorder) add(level logger.Level, msg string) {
	l.mu.Lock()
	l.msgs = append(l.msgs, level.String()+" "+msg)
	l.mu.Unlock()
}

// count returns how many messages contain s.
func (l *logRecorder) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// find returns the first message containing s.
func (l *logRecorder) find(s string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if strings.Contains(m, s) {
			return m, true
		}
	}
	return "", false
}

func newPlugin(t *testing.T, opts ...mreg.Option) (*Registry, *registrytest.Memory, *logRecorder) {
	t.Helper()
	mem := registrytest.NewMemory()
	t.Cleanup(func() { mem.Close() })
	rec := &logRecorder{}
	return New(mem, append([]mreg.Option{mreg.Logger(rec)}, opts...)...), mem, rec
}

func TestRegisterGetService(t *testing.T) {
	p, mem, _ := newPlugin(t)
	svc := greeter()
	if err := p.Register(svc, mreg.RegisterTTL(time.Second)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	// One instance per node in the backend.
	ins, err := mem.GetService(context.Background(), svc.Name)
	if err != nil || len(ins) != 2 {
		t.Fatalf("backend has %d instances (err %v), want 2", len(ins), err)
	}
	got, err := p.GetService(svc.Name)
	if err != nil {
		t.Fatalf("GetService: %v", err)
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], sortedNodes(svc)) {
		t.Errorf("GetService = %+v, want %+v", got, svc)
	}
	// Re-registering (go-micro's server does it every RegisterInterval) is harmless.
	if err := p.Register(svc); err != nil {
		t.Fatalf("Register again: %v", err)
	}
}

func TestGetServiceNotFound(t *testing.T) {
	p, _, _ := newPlugin(t)
	_, err := p.GetService("nobody")
	if err != mreg.ErrNotFound {
		t.Errorf("GetService(unknown) err = %v, want go-micro's registry.ErrNotFound itself", err)
	}
	_, err = p.GetService("bad/name")
	if !errors.Is(err, mreg.ErrNotFound) || !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("GetService(bad/name) err = %v, want one matching go-micro ErrNotFound and registry.ErrInvalid", err)
	}
}

// go-micro's server deregisters with a bare node: name, version, node ID and
// address, no metadata and no endpoints.
func TestDeregisterBareNode(t *testing.T) {
	p, _, _ := newPlugin(t)
	svc := greeter()
	if err := p.Register(svc); err != nil {
		t.Fatal(err)
	}
	bare := &mreg.Service{Name: svc.Name, Version: svc.Version, Nodes: []*mreg.Node{{Id: svc.Nodes[0].Id, Address: svc.Nodes[0].Address}}}
	if err := p.Deregister(bare); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	got, err := p.GetService(svc.Name)
	if err != nil || len(got) != 1 || len(got[0].Nodes) != 1 || got[0].Nodes[0].Id != svc.Nodes[1].Id {
		t.Fatalf("after deregistering one node: %+v, %v; want only %s", got, err, svc.Nodes[1].Id)
	}
	if err := p.Deregister(bare); err != nil {
		t.Errorf("Deregister of an unknown node: %v, want nil", err)
	}
	bare.Nodes[0].Id = svc.Nodes[1].Id
	if err := p.Deregister(bare); err != nil {
		t.Fatal(err)
	}
	if _, err := p.GetService(svc.Name); err != mreg.ErrNotFound {
		t.Errorf("after deregistering every node err = %v, want ErrNotFound", err)
	}
}

func TestRegisterDeregisterInvalid(t *testing.T) {
	p, mem, _ := newPlugin(t)
	bad := greeter()
	bad.Nodes[1].Address = "h:1/path"
	if err := p.Register(bad); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Register(bad address) err = %v, want registry.ErrInvalid", err)
	}
	if names, _ := mem.ListServices(context.Background()); len(names) != 0 {
		t.Errorf("an invalid service wrote %v, want nothing written", names)
	}
	for _, svc := range []*mreg.Service{nil, {Name: "s"}} {
		if err := p.Deregister(svc); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Deregister(%+v) err = %v, want registry.ErrInvalid", svc, err)
		}
	}
	if err := p.Deregister(&mreg.Service{Name: "s", Nodes: []*mreg.Node{{Id: "bad id"}}}); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Deregister(bad id) err = %v, want registry.ErrInvalid", err)
	}
}

// The go-micro HTTP broker registers its own service from the same process:
// several services and nodes coexist.
func TestSeveralServicesOneProcess(t *testing.T) {
	p, _, _ := newPlugin(t)
	broker := &mreg.Service{Name: "micro.http.broker", Version: "latest", Nodes: []*mreg.Node{{
		Id: "micro.http.broker-3b0f9a0e", Address: "127.0.0.1:40001", Metadata: map[string]string{"secure": "false", "broker": "http", "topic": "greeter"},
	}}}
	other := &mreg.Service{Name: "go.micro.srv.greeter", Version: "2.0.0", Nodes: []*mreg.Node{{Id: "go.micro.srv.greeter-9", Address: "127.0.0.1:9009"}}}
	for _, s := range []*mreg.Service{greeter(), broker, other} {
		if err := p.Register(s); err != nil {
			t.Fatalf("Register %s: %v", s.Name, err)
		}
	}
	list, err := p.ListServices()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range list {
		names = append(names, s.Name)
	}
	if want := []string{"go.micro.srv.greeter", "micro.http.broker"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ListServices = %v, want %v", names, want)
	}
	got, err := p.GetService("go.micro.srv.greeter")
	if err != nil || len(got) != 2 || got[0].Version != "1.0.0" || len(got[0].Nodes) != 2 || got[1].Version != "2.0.0" || len(got[1].Nodes) != 1 {
		t.Errorf("GetService(greeter) = %+v, %v; want 1.0.0 with 2 nodes and 2.0.0 with 1", got, err)
	}
	got, err = p.GetService("micro.http.broker")
	if err != nil || !reflect.DeepEqual(got, []*mreg.Service{broker}) {
		t.Errorf("GetService(broker) = %+v, %v; want %+v", got, err, broker)
	}
}

func TestBackendErrorsPassThrough(t *testing.T) {
	p, mem, _ := newPlugin(t)
	if err := p.Register(greeter()); err != nil {
		t.Fatal(err)
	}
	mem.SetAvailable(false)
	if err := p.Register(greeter()); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Register during outage: %v, want registry.ErrUnavailable", err)
	}
	if _, err := p.GetService("go.micro.srv.greeter"); !errors.Is(err, registry.ErrUnavailable) || errors.Is(err, mreg.ErrNotFound) {
		t.Errorf("GetService during outage: %v, want registry.ErrUnavailable, not ErrNotFound", err)
	}
	if _, err := p.ListServices(); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("ListServices during outage: %v, want registry.ErrUnavailable", err)
	}
	if err := p.Deregister(greeter()); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Deregister during outage: %v, want registry.ErrUnavailable", err)
	}
}

// deadlineSpy is the reference registry recording the deadline of the
// contexts it is given.
type deadlineSpy struct {
	*registrytest.Memory
	mu        sync.Mutex
	deadlines []time.Duration // remaining time at each call; -1 without deadline
	errs      []error
}

func (s *deadlineSpy) record(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	s.deadlines = append(s.deadlines, d)
	s.errs = append(s.errs, ctx.Err())
}

func (s *deadlineSpy) Register(ctx context.Context, in *registry.Instance) error {
	s.record(ctx)
	return s.Memory.Register(ctx, in)
}

func (s *deadlineSpy) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	s.record(ctx)
	return s.Memory.GetService(ctx, name)
}

func TestTimeoutAndContexts(t *testing.T) {
	spy := &deadlineSpy{Memory: registrytest.NewMemory()}
	t.Cleanup(func() { spy.Close() })
	p := New(spy)
	if err := p.Register(greeter()); err != nil {
		t.Fatal(err)
	}
	p.Init(mreg.Timeout(time.Hour))
	p.GetService("go.micro.srv.greeter")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	p.GetService("go.micro.srv.greeter", mreg.GetContext(cancelled))
	spy.mu.Lock()
	defer spy.mu.Unlock()
	if d := spy.deadlines[0]; d <= 0 || d > DefaultTimeout {
		t.Errorf("default deadline %v, want within DefaultTimeout %v", d, DefaultTimeout)
	}
	if d := spy.deadlines[len(spy.deadlines)-2]; d <= DefaultTimeout || d > time.Hour {
		t.Errorf("deadline with Timeout(1h) = %v, want about 1h", d)
	}
	if err := spy.errs[len(spy.errs)-1]; !errors.Is(err, context.Canceled) {
		t.Errorf("GetContext(cancelled) reached the backend with ctx err %v, want context.Canceled", err)
	}
}

func TestInitOptionsString(t *testing.T) {
	p, _, rec := newPlugin(t)
	if p.String() != "regchain" {
		t.Errorf("String() = %q, want regchain", p.String())
	}
	// Init is safe to call repeatedly, concurrently with use; options accumulate.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Init(mreg.Timeout(time.Duration(i+1) * time.Second))
			p.ListServices()
		}()
	}
	wg.Wait()
	p.Init(mreg.Timeout(7*time.Second), mreg.Addrs("10.0.0.1:2379"), mreg.Secure(true), mreg.TLSConfig(&tls.Config{}))
	p.Init()
	o := p.Options()
	if o.Timeout != 7*time.Second || !reflect.DeepEqual(o.Addrs, []string{"10.0.0.1:2379"}) || !o.Secure || o.TLSConfig == nil || o.Logger != rec {
		t.Errorf("Options() = %+v, want the accumulated options", o)
	}
	o.Addrs[0] = "changed"
	if p.Options().Addrs[0] != "10.0.0.1:2379" {
		t.Errorf("Options() shares its Addrs slice")
	}
	msg, ok := rec.find("ignored")
	if !ok {
		t.Fatal("ignored options were not logged")
	}
	for _, want := range []string{`Addrs ["10.0.0.1:2379"]`, "Secure", "TLSConfig"} {
		if !strings.Contains(msg, want) {
			t.Errorf("log %q does not name %s", msg, want)
		}
	}
	// Options are honoured: the registry still works after every Init.
	if err := p.Register(greeter()); err != nil {
		t.Fatalf("Register after Init: %v", err)
	}
}

func TestFactory(t *testing.T) {
	mem := registrytest.NewMemory()
	t.Cleanup(func() { mem.Close() })
	newRegistry := Factory(mem)
	r := newRegistry(mreg.Timeout(3 * time.Second))
	if r.String() != Name || r.Options().Timeout != 3*time.Second {
		t.Errorf("Factory(mem)(Timeout(3s)) = %s with timeout %v", r, r.Options().Timeout)
	}
	if err := r.Register(greeter()); err != nil {
		t.Fatal(err)
	}
	if _, err := mem.GetService(context.Background(), "go.micro.srv.greeter"); err != nil {
		t.Errorf("the factory's registry did not write to the backend: %v", err)
	}
}

func TestNewNilPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "nil registry") {
			t.Errorf("New(nil) recovered %v, want a panic naming the nil registry", r)
		}
	}()
	New(nil)
}
