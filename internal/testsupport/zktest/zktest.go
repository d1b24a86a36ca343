// Package zktest starts real standalone ZooKeeper servers for tests: each
// with its own data directory and a free loopback port, configured with a
// short tick so tests can use sessions of one or two seconds.
//
// It needs Debian's zookeeper package (the server jar and a JRE); CI installs
// it with scripts/install-zookeeper.sh. The helper never installs anything
// itself: it fails the test with a message naming the script instead.
//
// A Server is safe for concurrent use.
package zktest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/internal/harness/freeport"
)

// Jar is the ZooKeeper server jar Debian's zookeeper package installs. Its
// manifest's Class-Path names the jars it depends on.
const Jar = "/usr/share/java/zookeeper.jar"

// logJar is the SLF4J binding that sends the server's log to its log file.
const logJar = "/usr/share/java/slf4j-simple.jar"

// Tick is the servers' tickTime: sessions may be as short as 2·Tick.
const Tick = 200 * time.Millisecond

// StartTimeout bounds how long Start waits for a server to accept a session.
var StartTimeout = 60 * time.Second

// Server is a standalone ZooKeeper server run as a child JVM.
type Server struct {
	// Addr is the client address, "127.0.0.1:port". It does not change
	// across Restart.
	Addr string
	// TLSAddr is the secure client address of a server from StartTLS.
	TLSAddr string

	dir  string // dataDir and config
	tls  bool   // secure client port (tls.go): Netty on the class path
	port int

	mu   sync.Mutex // guards proc
	proc *proc      // nil while stopped
}

// proc is one run of the JVM.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the JVM has exited
	err    error         // Wait's result, set before exited is closed
}

// Available returns nil if a ZooKeeper server can be started here, else an
// error saying how to install one.
func Available() error {
	if _, err := os.Stat(Jar); err != nil {
		return fmt.Errorf("zktest: ZooKeeper is not installed (%v): run scripts/install-zookeeper.sh", err)
	}
	if _, err := exec.LookPath("java"); err != nil {
		return fmt.Errorf("zktest: no java on PATH (%v): run scripts/install-zookeeper.sh", err)
	}
	return nil
}

// Start starts a server in a fresh directory under t.TempDir and stops it
// when the test ends. It fails the test if the server cannot be started.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("zktest: stop: %v", err)
		}
	})
	return s
}

// New starts a server whose data and log live in dir (which must exist) and
// waits until it accepts a session. The caller must Stop it. Use it where no
// testing.TB is at hand (TestMain); tests prefer Start.
func New(dir string) (*Server, error) { return newServer(dir, nil) }

// newServer is New with extra configuration lines from extra (tls.go).
func newServer(dir string, extra func(*Server) (string, error)) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, port: port}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`tickTime=%d
initLimit=10
syncLimit=5
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,wchs
minSessionTimeout=%d
maxSessionTimeout=20000
maxClientCnxns=0
`, Tick.Milliseconds(), filepath.Join(dir, "data"), port, 2*Tick.Milliseconds())
	if extra != nil {
		more, err := extra(s)
		if err != nil {
			return nil, err
		}
		cfg += more
	}
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Stop kills the server and waits for the JVM to exit. Stopping a stopped
// server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	// SIGKILL: a crash, as far as clients and the data directory can tell.
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-p.exited // Wait's "signal: killed" is the expected outcome
	return nil
}

// Restart kills the server and starts it again on the same port and data
// directory, so it comes back with the tree and the sessions it had. It
// returns once the new server accepts a session.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.start()
}

// Resume starts a stopped server again on the same port and data
// directory and returns once it accepts a session. Resuming a running
// server does nothing.
func (s *Server) Resume() error {
	s.mu.Lock()
	running := s.proc != nil
	s.mu.Unlock()
	if running {
		return nil
	}
	return s.start()
}

// Wipe kills the server, deletes its data directory and starts it empty on
// the same port: a cluster rebuilt from nothing. Its zxids start again from
// zero, below what clients have seen. It returns once the new server
// accepts a session.
func (s *Server) Wipe() error {
	if err := s.Stop(); err != nil {
		return err
	}
	data := filepath.Join(s.dir, "data")
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	return s.start()
}

// Backup copies the running server's data directory (a hot copy, as an
// operator's backup is: ZooKeeper recovers from a transaction log whose tail
// was being written) and returns a function that restores it: it kills the
// server, replaces the data directory with the copy and starts the server
// on the same port, back at the older history. Restore may be called more
// than once.
func (s *Server) Backup() (restore func() error, err error) {
	data := filepath.Join(s.dir, "data")
	backup, err := os.MkdirTemp(s.dir, "backup-")
	if err != nil {
		return nil, err
	}
	if err := copyTree(data, backup); err != nil {
		return nil, fmt.Errorf("zktest: backup: %w", err)
	}
	return func() error {
		if err := s.Stop(); err != nil {
			return err
		}
		if err := os.RemoveAll(data); err != nil {
			return err
		}
		if err := copyTree(backup, data); err != nil {
			return fmt.Errorf("zktest: restore: %w", err)
		}
		return s.start()
	}, nil
}

// copyTree copies the regular files and directories under src into dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
}

// Watches returns the server's count of watches (the "wchs" four-letter
// command): every watch of every session, as the server holds them.
func (s *Server) Watches() (int, error) {
	c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := c.Write([]byte("wchs")); err != nil {
		return 0, err
	}
	out, err := io.ReadAll(c)
	if err != nil {
		return 0, err
	}
	_, total, ok := strings.Cut(string(out), "Total watches:")
	if !ok {
		return 0, fmt.Errorf("zktest: wchs answered %q", out)
	}
	return strconv.Atoi(strings.TrimSpace(total))
}

// Connect returns a client connection with the given session timeout that
// already has a session, closed (and waited for) when the test ends.
func (s *Server) Connect(t testing.TB, sessionTimeout time.Duration) *gozk.Conn {
	t.Helper()
	c, events, err := gozk.Connect([]string{s.Addr}, sessionTimeout, gozk.WithLogger(quiet{}))
	if err != nil {
		t.Fatalf("zktest: connect %s: %v", s.Addr, err)
	}
	t.Cleanup(func() {
		c.Close()
		for range events { // closed when the connection's goroutine ends
		}
	})
	deadline := time.After(StartTimeout)
	for c.State() != gozk.StateHasSession {
		select {
		case <-events:
		case <-deadline:
			t.Fatalf("zktest: no session with %s within %v", s.Addr, StartTimeout)
		}
	}
	return c
}

func (s *Server) start() error {
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child keeps its own descriptor
	cmd := exec.Command("java",
		"-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-Dzookeeper.admin.enableServer=false",
		"-cp", s.classpath(),
		"org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(s.dir, "zoo.cfg"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = s.dir
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("zktest: start java: %w", err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	if err := s.waitSession(p); err != nil {
		s.Stop()
		return fmt.Errorf("%w\n--- server.log ---\n%s", err, s.logTail())
	}
	return nil
}

// waitSession waits until the server grants a session: ZooKeeper answers
// ruok well before it accepts sessions.
func (s *Server) waitSession(p *proc) error {
	deadline := time.After(StartTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := s.trySession(); err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("zktest: server exited: %v", p.err)
		case <-deadline:
			return fmt.Errorf("zktest: %s accepted no session within %v", s.Addr, StartTimeout)
		case <-tick.C:
		}
	}
}

func (s *Server) trySession() error {
	// A single dial per try: gozk would otherwise retry on its own.
	nc, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	nc.Close()
	// A starting server may accept the connection and not answer the
	// handshake, which gozk then waits for (ten times its receive timeout):
	// keep the connections to cut them.
	var mu sync.Mutex
	var conns []net.Conn
	dial := func(network, addr string, timeout time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout(network, addr, timeout)
		if err == nil {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
		return c, err
	}
	c, events, err := gozk.Connect([]string{s.Addr}, 2*time.Second, gozk.WithLogger(quiet{}), gozk.WithDialer(dial))
	if err != nil {
		return err
	}
	defer func() {
		c.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		for range events {
		}
	}()
	timeout := time.After(time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == gozk.StateHasSession {
				_, _, err := c.Exists("/")
				return err
			}
		case <-timeout:
			return errors.New("zktest: no session yet")
		}
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

// freePort returns a port that stays free across a Stop and Start (see
// internal/freeport).
func freePort() (int, error) { return freeport.TCP() }

// quiet drops gozk's log lines (it logs every reconnect to stdout by default).
type quiet struct{}

func (quiet) Printf(string, ...any) {}
