package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
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
	"syscall"
	"time"

	"k8s.io/client-go/rest"

	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/internal/harness/freeport"
)

// StartTimeout bounds how long Start waits for the API server to be ready.
// A loaded 2-core machine needs well over the 2.5 s an idle one does.
var StartTimeout = 3 * time.Minute

// StopTimeout bounds how long Stop waits for the API server to exit after
// SIGTERM before it kills it.
var StopTimeout = 30 * time.Second

// EnvBinary names the environment variable holding the kube-apiserver
// binary's path (scripts/test.sh sets it).
const EnvBinary = "REGCHAIN_KUBE_APISERVER"

// Users the server knows, each with a bearer token (see Server.Config).
// UserAdmin is in group system:masters: every request is allowed, with or
// without RBAC. The others are in no group: with Options.RBAC they may do
// only what the test grants them.
const (
	UserAdmin  = "admin"
	UserReader = "reader"
	UserWriter = "writer"
)

var users = []string{UserAdmin, UserReader, UserWriter}

// Options configures a server.
type Options struct {
	// Dir holds the server's files: certificates, keys, the token file,
	// logs and, when Etcd is nil, etcd's data. Required.
	Dir string
	// Binary is the kube-apiserver binary. If empty, Binary() finds it.
	Binary string
	// Etcd is the etcd the API server stores into. If nil, Start starts
	// one of its own in Dir, which Close stops.
	Etcd *embedetcd.Server
	// RBAC sets --authorization-mode=RBAC. If false, AlwaysAllow.
	RBAC bool
	// NoWatchCache sets --watch-cache=false: watches are served from etcd,
	// so a watch resumed from a revision etcd has compacted is answered
	// 410 Gone at once.
	NoWatchCache bool
	// Args are more kube-apiserver flags.
	Args []string
}

// Server is a running kube-apiserver (or a stopped one that can start
// again on the same port, with the same files and etcd). Its methods are
// safe for concurrent use.
type Server struct {
	// Addr is the API server's address, "127.0.0.1:port". It does not
	// change across Stop and Start.
	Addr string

	dir     string
	bin     string
	args    []string
	etcd    *embedetcd.Server
	ownEtcd bool
	ca      []byte            // PEM of the CA that signed the serving certificate
	tokens  map[string]string // user -> bearer token

	mu   sync.Mutex // guards the fields below
	proc *proc      // nil while stopped
	runs int
}

type proc struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

var (
	binMu   sync.Mutex // guards binPath
	binPath string
)

// Binary returns the path of the kube-apiserver binary: $REGCHAIN_KUBE_APISERVER
// if set, else what scripts/install-kube-apiserver.sh prints (it builds the
// binary the first time: many minutes; later it answers at once).
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("kubetest: %s=%q: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	binMu.Lock()
	defer binMu.Unlock()
	if binPath != "" {
		return binPath, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("kubetest: cannot find scripts/install-kube-apiserver.sh (set %s to a kube-apiserver binary instead): %w", EnvBinary, err)
	}
	script := filepath.Join(root, "scripts", "install-kube-apiserver.sh")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", script)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("kubetest: %s failed (set %s to a kube-apiserver binary instead): %w\n%s", script, EnvBinary, err, tail(stderr.String(), 4000))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	p := strings.TrimSpace(lines[len(lines)-1])
	if _, err := os.Stat(p); p == "" || err != nil {
		return "", fmt.Errorf("kubetest: %s printed %q, not a kube-apiserver binary: %v", script, p, err)
	}
	binPath = p
	return p, nil
}

// repoRoot walks up from the working directory to the directory holding
// scripts/install-kube-apiserver.sh.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "install-kube-apiserver.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no scripts/install-kube-apiserver.sh above the working directory")
		}
		dir = parent
	}
}

// New starts a kube-apiserver (and, unless opts.Etcd is set, an etcd of its
// own) on free loopback ports and waits until it is ready. Close stops
// both.
func New(opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("kubetest: Options.Dir is required")
	}
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = Binary(); err != nil {
			return nil, err
		}
	}
	port, err := freeport.TCP()
	if err != nil {
		return nil, fmt.Errorf("kubetest: free port: %w", err)
	}
	s := &Server{
		Addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		dir:    opts.Dir,
		bin:    bin,
		etcd:   opts.Etcd,
		tokens: make(map[string]string),
	}
	pki, err := writePKI(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	s.ca = pki.caPEM
	tokenFile := filepath.Join(opts.Dir, "tokens.csv")
	var tb strings.Builder
	for _, u := range users {
		tok := randomHex(16)
		s.tokens[u] = tok
		groups := ""
		if u == UserAdmin {
			groups = "system:masters"
		}
		fmt.Fprintf(&tb, "%s,%s,%s,%q\n", tok, u, u, groups)
	}
	if err := os.WriteFile(tokenFile, []byte(tb.String()), 0o600); err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	if s.etcd == nil {
		dataDir := filepath.Join(opts.Dir, "etcd")
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("kubetest: %w", err)
		}
		if s.etcd, err = embedetcd.Start(dataDir); err != nil {
			return nil, fmt.Errorf("kubetest: etcd: %w", err)
		}
		s.ownEtcd = true
	}
	authz := "AlwaysAllow"
	if opts.RBAC {
		authz = "RBAC"
	}
	s.args = []string{
		"--etcd-servers=http://" + s.etcd.Endpoint(),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(opts.Dir, "certs"),
		"--tls-cert-file=" + pki.serverCert,
		"--tls-private-key-file=" + pki.serverKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki.saKey,
		"--service-account-signing-key-file=" + pki.saKey,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=" + authz,
		"--service-cluster-ip-range=10.96.0.0/24",
		// On loopback, without a controller manager: no endpoint
		// reconciler for the kubernetes Service, no service account
		// tokens to admit Pods with.
		"--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ServiceAccount",
		// Less work on a shared machine.
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	}
	if opts.NoWatchCache {
		s.args = append(s.args, "--watch-cache=false")
	}
	s.args = append(s.args, opts.Args...)
	if err := s.Start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Etcd returns the etcd the server stores into.
func (s *Server) Etcd() *embedetcd.Server { return s.etcd }

// CA returns the PEM of the CA that signed the server's certificate.
func (s *Server) CA() []byte { return bytes.Clone(s.ca) }

// Token returns the bearer token of user (UserAdmin, UserReader,
// UserWriter), "" for an unknown user.
func (s *Server) Token(user string) string { return s.tokens[user] }

// Config returns a client configuration for user at the server's address.
func (s *Server) Config(user string) *rest.Config { return s.ConfigAt(s.Addr, user) }

// ConfigAt returns a client configuration for user at addr (a proxy in
// front of the server, say). The serving certificate is valid for
// 127.0.0.1 whatever the port.
func (s *Server) ConfigAt(addr, user string) *rest.Config {
	return &rest.Config{
		Host:            "https://" + addr,
		BearerToken:     s.tokens[user],
		TLSClientConfig: rest.TLSClientConfig{CAData: bytes.Clone(s.ca)},
		QPS:             1000,
		Burst:           1000,
	}
}

// Running reports whether the API server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// Start starts a stopped API server again on the same port, files and
// etcd, and waits until it is ready. Starting a running server does
// nothing.
func (s *Server) Start() error {
	s.mu.Lock()
	if s.proc != nil {
		s.mu.Unlock()
		return nil
	}
	s.runs++
	logPath := filepath.Join(s.dir, fmt.Sprintf("kube-apiserver-%d.log", s.runs))
	s.mu.Unlock()
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = s.dir
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("kubetest: start %s: %w", s.bin, err)
	}
	p := &proc{cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	if err := s.waitReady(p); err != nil {
		s.Kill()
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("kubetest: kube-apiserver at %s not ready: %w\nlog (tail):\n%s", s.Addr, err, tail(string(out), 6000))
	}
	return nil
}

// waitReady polls /readyz until it answers 200 and the default namespace
// exists (the API server creates it shortly after it starts serving).
func (s *Server) waitReady(p *proc) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.ca)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func(path string) error {
		req, err := http.NewRequest(http.MethodGet, "https://"+s.Addr+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+s.tokens[UserAdmin])
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body := make([]byte, 2048)
		n, _ := resp.Body.Read(body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body[:n])
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := errors.New("no answer yet")
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("kube-apiserver exited: %v", p.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("not ready within %v: %w", StartTimeout, last)
		case <-tick.C:
		}
		if last = get("/readyz"); last != nil {
			continue
		}
		if last = get("/api/v1/namespaces/default"); last != nil {
			continue
		}
		return nil
	}
}

// Stop stops the API server gracefully (SIGTERM; SIGKILL after
// StopTimeout) and waits for it to exit. Its etcd keeps running. Stopping a
// stopped server does nothing.
func (s *Server) Stop() { s.stop(syscall.SIGTERM) }

// Kill kills the API server (SIGKILL: a crash) and waits for it to exit.
func (s *Server) Kill() { s.stop(syscall.SIGKILL) }

func (s *Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(StopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Restart stops the API server gracefully and starts it again.
func (s *Server) Restart() error {
	s.Stop()
	return s.Start()
}

// Wipe stops the API server, wipes its etcd (a cluster rebuilt empty, its
// revisions from 1 again) and starts the API server again, which recreates
// its default namespaces.
func (s *Server) Wipe() error {
	s.Stop()
	if err := s.etcd.Wipe(); err != nil {
		return fmt.Errorf("kubetest: wipe: %w", err)
	}
	return s.Start()
}

// Snapshot saves a snapshot of the server's etcd to path, for Restore.
func (s *Server) Snapshot(ctx context.Context, path string) error {
	return s.etcd.Snapshot(ctx, path)
}

// Restore stops the API server, restores its etcd from the snapshot at path
// (an older history: revisions behind what clients have seen) and starts
// the API server again.
func (s *Server) Restore(path string) error {
	s.Stop()
	if err := s.etcd.Restore(path); err != nil {
		return fmt.Errorf("kubetest: restore: %w", err)
	}
	return s.Start()
}

// Close stops the API server, then its etcd when it is the server's own.
// The API server stops first: with its etcd gone it would not stop on
// SIGTERM.
func (s *Server) Close() {
	s.Stop()
	if s.ownEtcd && s.etcd != nil {
		s.etcd.Stop()
	}
}

// Log returns the tail of the current (or last) run's log.
func (s *Server) Log() string {
	s.mu.Lock()
	path := filepath.Join(s.dir, fmt.Sprintf("kube-apiserver-%d.log", s.runs))
	s.mu.Unlock()
	b, _ := os.ReadFile(path)
	return tail(string(b), 6000)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
