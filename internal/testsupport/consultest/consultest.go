package consultest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"

	"github.com/regchain/regchain/internal/harness/freeport"
)

// StartTimeout bounds how long Start and Restart wait for an agent to elect
// itself leader and list itself in its catalog.
var StartTimeout = 60 * time.Second

// Options configures an agent.
type Options struct {
	// ACL turns ACLs on with default policy "deny"; Agent.Token is then the
	// initial management token.
	ACL bool
	// TLS, when set, also serves the HTTP API over TLS at Agent.HTTPSAddr
	// with this certificate (PEM files; the CA is only used to verify
	// clients that present a certificate).
	TLS *TLSFiles
	// HCL holds extra agent configuration, one HCL snippet per entry
	// (passed as -hcl), e.g. `limits { http_max_conns_per_client = 20 }`.
	HCL []string
}

// TLSFiles names the PEM files of an agent's TLS setup.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// Agent is a running `consul agent -dev`. Its methods are safe for
// concurrent use.
type Agent struct {
	// Addr is the HTTP API address, "127.0.0.1:port". It does not change
	// across Restart.
	Addr string
	// Token is the management token when Options.ACL is set, else "".
	Token string
	// HTTPSAddr is the HTTPS API address when Options.TLS is set, else "".
	HTTPSAddr string

	bin  string
	dir  string // log files
	args []string

	mu   sync.Mutex // guards the fields below
	proc *proc      // nil while stopped
	runs int
}

// proc is one run of the agent process.
type proc struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{} // closed when the process has exited
}

var (
	binMu   sync.Mutex // guards binPath
	binPath string
)

// Binary returns the path of the Consul agent binary: $REGCHAIN_CONSUL if
// set, else the path scripts/install-consul.sh prints (building it the first
// time). It fails the test if neither works.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("REGCHAIN_CONSUL"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("consultest: REGCHAIN_CONSUL=%q: %v", p, err)
		}
		return p
	}
	binMu.Lock()
	defer binMu.Unlock()
	if binPath != "" {
		return binPath
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("consultest: cannot find the repository root to run scripts/install-consul.sh (set REGCHAIN_CONSUL to a consul binary instead): %v", err)
	}
	script := filepath.Join(root, "scripts", "install-consul.sh")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", script)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("consultest: %s failed (set REGCHAIN_CONSUL to a consul binary instead): %v\n%s", script, err, tail(stderr.String(), 4000))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	p := strings.TrimSpace(lines[len(lines)-1])
	if _, err := os.Stat(p); p == "" || err != nil {
		t.Fatalf("consultest: %s printed %q, not a consul binary: %v", script, p, err)
	}
	binPath = p
	return p
}

// repoRoot walks up from the working directory to the directory holding
// scripts/install-consul.sh.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "install-consul.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no scripts/install-consul.sh above the working directory")
		}
		dir = parent
	}
}

// Start starts an agent and waits until it serves requests. The agent is
// killed when the test ends.
func Start(t testing.TB, opts Options) *Agent {
	t.Helper()
	bin := Binary(t)
	ports, err := freePorts(7)
	if err != nil {
		t.Fatalf("consultest: free ports: %v", err)
	}
	http, grpc, serfLAN, serfWAN, server, dns, https := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6]
	a := &Agent{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(http)),
		bin:  bin,
		dir:  t.TempDir(),
	}
	a.args = []string{
		"agent", "-dev",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-node", "regchain-test",
		"-log-level", "info",
		"-http-port", strconv.Itoa(http),
		"-grpc-port", strconv.Itoa(grpc),
		"-serf-lan-port", strconv.Itoa(serfLAN),
		"-serf-wan-port", strconv.Itoa(serfWAN),
		"-server-port", strconv.Itoa(server),
		"-dns-port", strconv.Itoa(dns),
		"-hcl", "ports { grpc_tls = -1 }",
	}
	if opts.TLS != nil {
		a.HTTPSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(https))
		a.args = append(a.args,
			"-https-port", strconv.Itoa(https),
			"-hcl", fmt.Sprintf(`tls {
  defaults {
    cert_file = %q
    key_file = %q
    ca_file = %q
    verify_incoming = false
  }
}`, opts.TLS.CertFile, opts.TLS.KeyFile, opts.TLS.CAFile))
	}
	if opts.ACL {
		a.Token = uuid()
		a.args = append(a.args, "-hcl", fmt.Sprintf(`acl {
  enabled = true
  default_policy = "deny"
  enable_token_persistence = false
  tokens {
    initial_management = %q
    agent = %q
  }
}`, a.Token, a.Token))
	}
	for _, h := range opts.HCL {
		a.args = append(a.args, "-hcl", h)
	}
	t.Cleanup(a.Stop)
	if err := a.start(); err != nil {
		t.Fatalf("consultest: %v", err)
	}
	return a
}

// Stop kills the agent (SIGKILL: a crash, no graceful leave) and waits for
// it to exit. Stopping a stopped agent does nothing.
func (a *Agent) Stop() {
	a.mu.Lock()
	p := a.proc
	a.proc = nil
	a.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Restart kills the agent and starts a fresh one on the same ports. In dev
// mode the new agent knows nothing of the old one's services and checks.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	a.Stop()
	if err := a.start(); err != nil {
		t.Fatalf("consultest: restart: %v", err)
	}
}

// Wipe kills the agent and starts an empty one on the same ports: a dev
// agent keeps nothing on disk, so for it a restart is a wipe (a registry
// whose history starts again). Consul's -dev mode has no backup to restore
// from: Backup/restore has no consultest equivalent.
func (a *Agent) Wipe(t testing.TB) { a.Restart(t) }

// Resume starts a stopped agent again on the same ports (in dev mode it
// starts empty) and returns once it is ready. Resuming a running agent
// does nothing.
func (a *Agent) Resume(t testing.TB) {
	t.Helper()
	if a.Running() {
		return
	}
	if err := a.start(); err != nil {
		t.Fatalf("consultest: resume: %v", err)
	}
}

// Running reports whether the agent process is up.
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.proc != nil
}

// Client returns an API client for the agent authenticated with Token. Its
// idle connections are closed when the test ends.
func (a *Agent) Client(t testing.TB) *consulapi.Client {
	t.Helper()
	c, tr, err := a.newClient(a.Token)
	if err != nil {
		t.Fatalf("consultest: client: %v", err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

func (a *Agent) newClient(token string) (*consulapi.Client, *http.Transport, error) {
	tr := cleanhttp.DefaultPooledTransport()
	c, err := consulapi.NewClient(&consulapi.Config{Address: a.Addr, Scheme: "http", Token: token, Transport: tr})
	return c, tr, err
}

func (a *Agent) start() error {
	a.mu.Lock()
	a.runs++
	logPath := filepath.Join(a.dir, fmt.Sprintf("consul-%d.log", a.runs))
	a.mu.Unlock()
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(a.bin, a.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = a.dir
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", a.bin, err)
	}
	p := &proc{cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	a.mu.Lock()
	a.proc = p
	a.mu.Unlock()
	if err := a.waitReady(p); err != nil {
		a.Stop()
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("agent at %s not ready: %w\nagent log (tail):\n%s", a.Addr, err, tail(string(out), 6000))
	}
	return nil
}

// waitReady polls until the agent has a leader and lists its own node and
// the consul service as passing in the catalog: from then on registrations
// show up in health queries.
func (a *Agent) waitReady(p *proc) error {
	c, tr, err := a.newClient(a.Token)
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := errors.New("no answer yet")
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("agent exited: %v", p.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("not ready within %v: %w", StartTimeout, last)
		case <-tick.C:
		}
		q := (&consulapi.QueryOptions{}).WithContext(ctx)
		leader, err := c.Status().LeaderWithQueryOptions(q)
		if err != nil || leader == "" {
			last = fmt.Errorf("leader %q, %v", leader, err)
			continue
		}
		entries, _, err := c.Health().Service("consul", "", true, q)
		if err != nil || len(entries) == 0 {
			last = fmt.Errorf("consul service not passing yet (%d entries, %v)", len(entries), err)
			continue
		}
		return nil
	}
}

// freePorts returns n distinct loopback ports free for both TCP and UDP,
// which stay free across an agent's restart (see internal/freeport).
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		p, err := freeport.TCPUDP()
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	return ports, nil
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
