package embedetcd

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/regchain/regchain/internal/harness/faultproxy"
)

// Cluster is an embedded etcd cluster of several members on loopback, for
// fault tests. Each member's client port is behind its own fault proxy
// (Member.ClientProxy: refuse, partition, sever), and its peer port behind a
// peer proxy that knows which member dialed, so Isolate can cut one member
// off from the others while its clients still reach it — the minority side
// of a partition.
//
// Addresses are stable across a member's Stop and Start. A Cluster is safe
// for concurrent use.
//
// # Caveats
//
// Isolate cuts raft traffic (identified by etcd's X-Server-From header) and
// severs connections of unknown origin (lease forwarding, version probes)
// at the moment it is called; such a connection opened later is not
// identified and passes. An isolated member stops forwarding once it has
// noticed it lost its leader (one election timeout), so this window is
// short but not zero.
type Cluster struct {
	token   string
	members []*Member
}

// Member is one member of a Cluster.
type Member struct {
	c         *Cluster
	idx       int
	name      string
	dir       string
	endpoint  string // client proxy address, what clients use
	clientURL url.URL
	peerURL   url.URL // where etcd listens for peers
	advPeer   url.URL // the peer proxy, what the other members dial

	peer *peerProxy // lives as long as the cluster

	mu     sync.Mutex // guards the fields below
	e      *embed.Etcd
	proxy  *faultproxy.Proxy
	id     string // member ID as etcd prints it (hex)
	joined bool   // started at least once: restarts use its data
}

// StartCluster starts an n-member cluster with its members' data under dir
// and waits until it has a leader.
func StartCluster(dir string, n int) (*Cluster, error) {
	if n < 1 {
		return nil, errors.New("embedetcd: cluster needs at least one member")
	}
	c := &Cluster{token: fmt.Sprintf("regchain-%d", time.Now().UnixNano())}
	for i := range n {
		var ports [4]int
		for k := range ports {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			ports[k] = p
		}
		m := &Member{
			c: c, idx: i, name: fmt.Sprintf("m%d", i), dir: filepath.Join(dir, fmt.Sprintf("m%d", i)),
			endpoint:  fmt.Sprintf("127.0.0.1:%d", ports[0]),
			clientURL: url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])},
			peerURL:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2])},
			advPeer:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[3])},
		}
		pp, err := listenPeerProxy(m.advPeer.Host, m.peerURL.Host)
		if err != nil {
			c.Stop()
			return nil, err
		}
		m.peer = pp
		c.members = append(c.members, m)
	}
	// A new cluster's members wait for each other: start all, then wait.
	errc := make(chan error, n)
	for _, m := range c.members {
		go func() { errc <- m.Start() }()
	}
	var errs []error
	for range n {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) initialCluster() string {
	parts := make([]string, len(c.members))
	for i, m := range c.members {
		parts[i] = m.name + "=" + m.advPeer.String()
	}
	return strings.Join(parts, ",")
}

// Members returns the members, in order.
func (c *Cluster) Members() []*Member { return c.members }

// Member returns member i.
func (c *Cluster) Member(i int) *Member { return c.members[i] }

// Endpoints returns every member's client address.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.endpoint
	}
	return out
}

// Leader returns the index of the member the running members agree is the
// leader, or -1.
func (c *Cluster) Leader() int {
	for _, m := range c.members {
		e := m.Etcd()
		if e == nil {
			continue
		}
		if e.Server.Leader() == e.Server.MemberID() && !m.isolated() {
			return m.idx
		}
	}
	return -1
}

// Isolate cuts member i off from every other member (both directions);
// clients still reach it. Heal ends it.
func (c *Cluster) Isolate(i int) {
	origin := c.members[i].ID()
	for j, m := range c.members {
		if j == i {
			m.peer.block("*")
		} else {
			m.peer.block(origin)
		}
	}
}

// Heal ends every Isolate.
func (c *Cluster) Heal() {
	for _, m := range c.members {
		m.peer.unblockAll()
	}
}

// Stop stops every member and proxy; data stays in dir.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, m := range c.members {
		wg.Add(1)
		go func() { defer wg.Done(); m.Stop() }()
	}
	wg.Wait()
	for _, m := range c.members {
		m.peer.close()
	}
}

// Index returns the member's position in the cluster.
func (m *Member) Index() int { return m.idx }

// Endpoint returns the member's client address, stable across restarts.
func (m *Member) Endpoint() string { return m.endpoint }

// Dir returns the member's data directory.
func (m *Member) Dir() string { return m.dir }

// ID returns the member ID (hex, as etcd prints it), known once started.
func (m *Member) ID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}

// ClientProxy returns the proxy between clients and the member; nil while
// stopped.
func (m *Member) ClientProxy() *faultproxy.Proxy {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proxy
}

// Etcd returns the running member, nil when stopped.
func (m *Member) Etcd() *embed.Etcd {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.e
}

func (m *Member) isolated() bool { return m.peer.refused("*") }

// Start starts a stopped member on its data (or, the first time, as a
// member of the new cluster).
func (m *Member) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.e != nil {
		return nil
	}
	cfg := newConfig(m.name, m.dir, m.clientURL, m.peerURL, m.advPeer)
	cfg.InitialCluster = m.c.initialCluster()
	cfg.InitialClusterToken = m.c.token
	if m.joined {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	e, p, err := startEtcd(cfg, m.endpoint, "member "+m.name, 60*time.Second)
	if err != nil {
		return err
	}
	m.e, m.proxy, m.id, m.joined = e, p, e.Server.MemberID().String(), true
	return nil
}

// Stop kills the member (its data stays): its client connections are cut
// at once.
func (m *Member) Stop() {
	m.mu.Lock()
	e, p := m.e, m.proxy
	m.e, m.proxy = nil, nil
	m.mu.Unlock()
	if p != nil {
		p.Close()
	}
	if e != nil {
		e.Close()
	}
}

// WaitLeader waits until the running members have a leader that is not
// isolated and returns its index.
func (c *Cluster) WaitLeader(ctx context.Context) (int, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if l := c.Leader(); l >= 0 {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-t.C:
		}
	}
}

// Replace wipes member i and brings it back empty, the way an operator
// replaces a lost machine: the member is stopped, removed from the cluster
// through the others, its data deleted, added again (under a new member
// ID) and started; it then catches up from the leader.
func (c *Cluster) Replace(ctx context.Context, i int) error {
	m := c.members[i]
	m.Stop()
	var others []string
	for j, o := range c.members {
		if j != i && o.Etcd() != nil {
			others = append(others, o.endpoint)
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: others, DialTimeout: 2 * time.Second, Logger: zap.NewNop(), Context: ctx})
	if err != nil {
		return fmt.Errorf("embedetcd: replace %s: %w", m.name, err)
	}
	defer cli.Close()
	id, err := strconv.ParseUint(m.ID(), 16, 64)
	if err != nil {
		return fmt.Errorf("embedetcd: replace %s: member ID %q: %w", m.name, m.ID(), err)
	}
	if _, err := cli.MemberRemove(ctx, id); err != nil {
		return fmt.Errorf("embedetcd: remove %s: %w", m.name, err)
	}
	if err := os.RemoveAll(m.dir); err != nil {
		return err
	}
	// etcd refuses to add a member until every member has been connected
	// for its health interval (5s): retry until then.
	for {
		_, err := cli.MemberAdd(ctx, []string{m.advPeer.String()})
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "unhealthy cluster") || ctx.Err() != nil {
			return fmt.Errorf("embedetcd: add %s: %w", m.name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("embedetcd: add %s: %w", m.name, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	m.mu.Lock()
	m.joined = true // join the existing cluster, with no data
	m.mu.Unlock()
	return m.Start()
}
