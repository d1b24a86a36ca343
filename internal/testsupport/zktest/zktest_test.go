package zktest

import (
	"errors"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// A restarted server keeps its port, its tree and (within their timeout)
// its sessions.
func TestStartRestart(t *testing.T) {
	s := Start(t)
	c := s.Connect(t, 4*time.Second)
	if _, err := c.Create("/persistent", []byte("kept"), 0, gozk.WorldACL(gozk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create("/ephemeral", nil, gozk.FlagEphemeral, gozk.WorldACL(gozk.PermAll)); err != nil {
		t.Fatal(err)
	}
	addr, session := s.Addr, c.SessionID()
	start := time.Now()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted in %v", time.Since(start))
	if s.Addr != addr {
		t.Fatalf("Addr after Restart = %s, want %s", s.Addr, addr)
	}
	o := s.Connect(t, 2*time.Second)
	t.Logf("observer connected after %v", time.Since(start))
	if data, _, err := o.Get("/persistent"); err != nil || string(data) != "kept" {
		t.Fatalf("after Restart: Get /persistent = %q, %v; want \"kept\"", data, err)
	}
	// The first client reconnects to its restored session; its ephemeral
	// node is still there.
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		_, st, err := c.Get("/ephemeral")
		if err == nil && c.State() == gozk.StateHasSession {
			if st.EphemeralOwner != session || c.SessionID() != session {
				t.Fatalf("ephemeral owner %#x, client session %#x; want the old session %#x", st.EphemeralOwner, c.SessionID(), session)
			}
			t.Logf("old session back after %v", time.Since(start))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client did not get back to its session: %v", err)
		}
		if err != nil && !errors.Is(err, gozk.ErrConnectionClosed) && !errors.Is(err, gozk.ErrNoServer) {
			t.Fatalf("Get /ephemeral after Restart: %v", err)
		}
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// Wipe starts the server empty on the same port; a restored backup has the
// tree of the time of the backup, not what was written after it.
func TestWipeBackupRestore(t *testing.T) {
	s := Start(t)
	addr := s.Addr
	c := s.Connect(t, 4*time.Second)
	acl := gozk.WorldACL(gozk.PermAll)
	if _, err := c.Create("/before", []byte("b"), 0, acl); err != nil {
		t.Fatal(err)
	}
	restore, err := s.Backup()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create("/after", []byte("a"), 0, acl); err != nil {
		t.Fatal(err)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	o := s.Connect(t, 2*time.Second)
	if data, _, err := o.Get("/before"); err != nil || string(data) != "b" {
		t.Fatalf("after restore: Get /before = %q, %v; want \"b\"", data, err)
	}
	if ok, _, err := o.Exists("/after"); err != nil || ok {
		t.Fatalf("after restore: Exists /after = %v, %v; want false (written after the backup)", ok, err)
	}
	if err := s.Wipe(); err != nil {
		t.Fatal(err)
	}
	if s.Addr != addr {
		t.Fatalf("Addr after Wipe = %s, want %s", s.Addr, addr)
	}
	w := s.Connect(t, 2*time.Second)
	if ok, _, err := w.Exists("/before"); err != nil || ok {
		t.Fatalf("after Wipe: Exists /before = %v, %v; want false", ok, err)
	}
}

// Watches counts the watches the server holds.
func TestWatches(t *testing.T) {
	s := Start(t)
	c := s.Connect(t, 4*time.Second)
	before, err := s.Watches()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.ExistsW("/watched"); err != nil {
		t.Fatal(err)
	}
	after, err := s.Watches()
	if err != nil {
		t.Fatal(err)
	}
	if after != before+1 {
		t.Fatalf("watches: %d before an ExistsW, %d after; want one more", before, after)
	}
}
