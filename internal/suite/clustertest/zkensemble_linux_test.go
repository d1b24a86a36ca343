package clustertest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/internal/harness/freeport"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/internal/testsupport/zktest"
)

// ensemble is a 3-server ZooKeeper ensemble on loopback (Debian's
// package, QuorumPeerMain), for the ZooKeeper side of the cluster
// scenarios. Linux only: the JVMs die with the test binary (Pdeathsig).
type ensemble struct {
	t       *testing.T
	dir     string
	addrs   []string // client addresses
	mu      sync.Mutex
	procs   []*exec.Cmd
	exited  []chan struct{}
	running []bool
}

func freePortT(t *testing.T) int {
	t.Helper()
	p, err := freeport.TCP()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func startEnsemble(t *testing.T, n int) *ensemble {
	t.Helper()
	if err := zktest.Available(); err != nil {
		t.Fatal(err)
	}
	e := &ensemble{t: t, dir: t.TempDir(), procs: make([]*exec.Cmd, n), exited: make([]chan struct{}, n), running: make([]bool, n)}
	var servers []string
	for i := range n {
		servers = append(servers, fmt.Sprintf("server.%d=127.0.0.1:%d:%d", i+1, freePortT(t), freePortT(t)))
		e.addrs = append(e.addrs, fmt.Sprintf("127.0.0.1:%d", freePortT(t)))
	}
	for i := range n {
		d := filepath.Join(e.dir, fmt.Sprint(i+1))
		if err := os.MkdirAll(filepath.Join(d, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "data", "myid"), []byte(strconv.Itoa(i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(e.addrs[i])
		cfg := fmt.Sprintf(`tickTime=%d
initLimit=20
syncLimit=5
dataDir=%s
clientPort=%s
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
minSessionTimeout=%d
maxSessionTimeout=20000
maxClientCnxns=0
%s
`, zktest.Tick.Milliseconds(), filepath.Join(d, "data"), port, 2*zktest.Tick.Milliseconds(), strings.Join(servers, "\n"))
		if err := os.WriteFile(filepath.Join(d, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(e.stopAll)
	for i := range n {
		e.start(i)
	}
	e.waitQuorum()
	return e
}

func (e *ensemble) start(i int) {
	e.t.Helper()
	d := filepath.Join(e.dir, fmt.Sprint(i+1))
	logf, err := os.OpenFile(filepath.Join(d, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("java", "-Xmx96m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-Dzookeeper.admin.enableServer=false",
		"-cp", zktest.Jar+string(os.PathListSeparator)+"/usr/share/java/slf4j-simple.jar",
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", filepath.Join(d, "zoo.cfg"))
	cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, d
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	e.mu.Lock()
	e.procs[i], e.exited[i], e.running[i] = cmd, done, true
	e.mu.Unlock()
}

// kill kills server i (SIGKILL, a crash).
func (e *ensemble) kill(i int) {
	e.mu.Lock()
	cmd, done, running := e.procs[i], e.exited[i], e.running[i]
	e.running[i] = false
	e.mu.Unlock()
	if running {
		cmd.Process.Kill()
		<-done
	}
}

func (e *ensemble) stopAll() {
	for i := range e.procs {
		e.kill(i)
	}
}

// waitQuorum waits until a session can be had and a write succeeds.
func (e *ensemble) waitQuorum() time.Duration {
	e.t.Helper()
	return testutil.WaitFor(e.t, 90*time.Second, "ZooKeeper ensemble serves writes", func() string {
		if err := e.tryWrite(); err != nil {
			return err.Error()
		}
		return ""
	})
}

func (e *ensemble) tryWrite() error {
	c, events, err := gozk.Connect(e.addrs, 2*time.Second, gozk.WithLogInfo(false), gozk.WithLogger(nopLog{}))
	if err != nil {
		return err
	}
	defer func() {
		c.Close()
		for range events {
		}
	}()
	timeout := time.After(3 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == gozk.StateHasSession {
				_, err := c.Create("/probe-", nil, gozk.FlagEphemeral|gozk.FlagSequence, gozk.WorldACL(gozk.PermAll))
				return err
			}
		case <-timeout:
			return errors.New("no session")
		}
	}
}

type nopLog struct{}

func (nopLog) Printf(string, ...any) {}
