package consul

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/internal/keylock"
	"github.com/regchain/regchain/internal/redact"
	"github.com/regchain/regchain/registry"
)

// Source is the Update.Source of every update this package delivers.
const Source = "consul"

// Registry is a registry.Registry over a Consul agent. It is safe for
// concurrent use.
type Registry struct {
	cfg    Config
	client *consulapi.Client
	tr     *http.Transport // ours to close on Close; nil for Config.Client
	log    *slog.Logger

	ctx    context.Context // the registry's own: keepalives and the watch hub
	cancel context.CancelFunc
	wg     sync.WaitGroup // keepalive goroutines and the hub's scheduler
	locks  keylock.Locks  // serialises Register/Deregister per instance ID
	beats  chan struct{}  // a slot per heartbeat in flight: at most maxBeats at once
	feeds  registry.Hub   // every watcher's feed

	mu     sync.Mutex // guards the fields below
	closed bool
	regs   map[string]*registration // by Instance.Key()
	bySID  map[string]*registration // by Consul service ID
	hub    *hub                     // serves every watcher; nil while there is none
	reach  reachability
}

var (
	_ registry.Registry             = (*Registry)(nil)
	_ registry.Pinger               = (*Registry)(nil)
	_ registry.RegistrationReporter = (*Registry)(nil)
)

// String returns "consul.Registry(ADDRESS)", for messages.
func (r *Registry) String() string { return "consul.Registry(" + r.cfg.Address + ")" }

// Format implements fmt.Formatter: every verb prints String, never the
// fields (the configuration holds the ACL token).
func (r *Registry) Format(f fmt.State, verb rune) {
	redact.FormatShort(f, verb, r.String(), r.String())
}

// LogValue implements slog.LogValuer: String.
func (r *Registry) LogValue() slog.Value { return slog.StringValue(r.String()) }

// New returns a Registry configured by cfg. It does not contact the agent:
// use Ping to check it is reachable.
func New(cfg Config) (*Registry, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Registry{
		cfg:    cfg,
		client: cfg.Client,
		log:    cfg.Logger.With("registry", Source),
		regs:   make(map[string]*registration),
		bySID:  make(map[string]*registration),
		beats:  make(chan struct{}, maxBeats),
	}
	if r.client == nil {
		ac := consulapi.DefaultConfig()
		if cfg.Address != "" {
			ac.Address = cfg.Address
		}
		if cfg.Token != "" {
			ac.Token = cfg.Token
		}
		if cfg.TLS != nil {
			ac.Transport.TLSClientConfig = cfg.TLS.Clone()
			ac.Scheme = "https"
		}
		if cfg.Scheme != "" {
			ac.Scheme = cfg.Scheme
		}
		tune(ac.Transport)
		r.tr = ac.Transport
		if r.client, err = consulapi.NewClient(ac); err != nil {
			r.tr.CloseIdleConnections()
			return nil, fmt.Errorf("consul: %w: client: %w", registry.ErrInvalid, err)
		}
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// maxConns bounds a registry's connections to the agent: the hub's
// maxReads+2, the heartbeats' maxBeats and four for the caller's own
// requests. Consul caps connections per client IP
// (limits.http_max_conns_per_client, 200 by default, shared by every
// process of a host talking to its local agent); without a bound of its
// own, net/http dials a new connection whenever a request starts before a
// finished one's connection is back in the idle pool, which on a loaded
// machine adds a few at a time.
const maxConns = maxReads + 2 + maxBeats + 4

// tune sets the transport New builds: at most maxConns connections to the
// agent, and enough of them kept alive between uses not to redial.
func tune(tr *http.Transport) {
	tr.MaxConnsPerHost = maxConns
	tr.MaxIdleConnsPerHost = max(tr.MaxIdleConnsPerHost, maxConns)
}

// errClosed is what every method returns after Close.
func errClosed(op string) error { return fmt.Errorf("consul: %s: %w", op, registry.ErrClosed) }

func (r *Registry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// query returns QueryOptions for a read bounded by ctx.
func (r *Registry) query(ctx context.Context) *consulapi.QueryOptions {
	return (&consulapi.QueryOptions{Datacenter: r.cfg.Datacenter}).WithContext(ctx)
}

// GetService implements registry.Registry. It returns the instances whose
// checks all pass, as Kratos' resolver does.
func (r *Registry) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	if r.isClosed() {
		return nil, errClosed("get")
	}
	if err := registry.ValidateName(name); err != nil {
		return nil, fmt.Errorf("consul: get: %w", err)
	}
	entries, meta, err := r.client.Health().Service(name, "", true, r.query(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul: get %s: %w", registry.Quote(name), classify(err))
	}
	out := r.decodeEntries(entries, nil)
	if len(out) == 0 {
		if meta != nil && meta.ResultsFilteredByACLs {
			return nil, fmt.Errorf("consul: get %s: %w: %w: the token may not read this service (results filtered by ACLs)", registry.Quote(name), registry.ErrInvalid, ErrPermissionDenied)
		}
		return nil, fmt.Errorf("consul: get %s: %w", registry.Quote(name), registry.ErrNotFound)
	}
	return out, nil
}

// ListServices implements registry.Registry: the services of the catalog
// (whatever their health) whose names are valid registry names.
func (r *Registry) ListServices(ctx context.Context) ([]string, error) {
	if r.isClosed() {
		return nil, errClosed("list")
	}
	services, _, err := r.client.Catalog().Services(r.query(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul: list: %w", classify(err))
	}
	names := make([]string, 0, len(services))
	for name := range services {
		if registry.ValidateName(name) == nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Ping implements registry.Pinger: it asks the agent for the cluster's
// leader, which needs no ACL permission. No leader is ErrUnavailable.
func (r *Registry) Ping(ctx context.Context) error {
	if r.isClosed() {
		return errClosed("ping")
	}
	if err := r.ping(ctx); err != nil {
		return err
	}
	r.answered()
	return nil
}

// ping is one GET /v1/status/leader: its cost does not grow with the data.
func (r *Registry) ping(ctx context.Context) error {
	leader, err := r.client.Status().LeaderWithQueryOptions(r.query(ctx))
	if err != nil {
		return fmt.Errorf("consul: ping: %w", classify(err))
	}
	if leader == "" {
		return fmt.Errorf("consul: ping: %w: no cluster leader", registry.ErrUnavailable)
	}
	return nil
}

// Close implements registry.Registry: it stops the heartbeats (the checks
// then turn critical after their TTL and the agent removes the services
// after DeregisterCriticalServiceAfter), ends every watcher with
// registry.ErrClosed and waits for every goroutine to return.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.feeds.EndAll(errClosed("watch"))
	r.cancel()
	r.wg.Wait()
	if r.tr != nil {
		r.tr.CloseIdleConnections()
	}
	return nil
}

// decodeEntries decodes health entries into instances sorted by ID; entries
// that do not decode are skipped and logged (once per key in warned, when
// warned is not nil). Two entries with one instance ID (one ID on two nodes,
// or moved between service IDs) yield the most recently modified.
func (r *Registry) decodeEntries(entries []*consulapi.ServiceEntry, warned map[string]bool) []*registry.Instance {
	out := make([]*registry.Instance, 0, len(entries))
	seen := make(map[string]int, len(entries)) // instance ID -> index in out
	mod := make([]uint64, 0, len(entries))
	for _, e := range entries {
		if e == nil || e.Service == nil {
			continue
		}
		node := ""
		if e.Node != nil {
			node = e.Node.Address
		}
		in, err := decode(e.Service, node)
		if err != nil {
			key := e.Service.Service + "/" + e.Service.ID
			if warned == nil {
				r.log.Debug("skipping undecodable service", "service", registry.Clip(e.Service.Service), "id", registry.Clip(e.Service.ID), "err", err)
			} else if !warned[key] {
				warned[key] = true
				r.log.Warn("skipping undecodable service", "service", registry.Clip(e.Service.Service), "id", registry.Clip(e.Service.ID), "err", err)
			}
			continue
		}
		if i, dup := seen[in.ID]; dup {
			if e.Service.ModifyIndex > mod[i] {
				out[i], mod[i] = in, e.Service.ModifyIndex
			}
			continue
		}
		seen[in.ID] = len(out)
		out = append(out, in)
		mod = append(mod, e.Service.ModifyIndex)
	}
	registry.SortInstances(out)
	return out
}
