package signal

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestFireWakesEveryWaiterOnce: a Fire closes the channels taken before it,
// and not those taken after it; a Signal fires any number of times.
func TestFireWakesEveryWaiterOnce(t *testing.T) {
	var s Signal
	a, b := s.Wait(), s.Wait()
	if closed(a) || closed(b) {
		t.Fatal("closed before any Fire")
	}
	s.Fire()
	if !closed(a) || !closed(b) {
		t.Fatal("a Fire did not close the channels taken before it")
	}
	c := s.Wait()
	if closed(c) {
		t.Fatal("a channel taken after the Fire is closed")
	}
	s.Fire()
	s.Fire() // with nobody waiting: no panic
	if !closed(c) {
		t.Fatal("the second Fire did not close the channel taken before it")
	}
}
