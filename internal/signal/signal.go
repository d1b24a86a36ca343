// Package signal is a broadcast that can fire any number of times: waiters
// take the current channel and are woken when the next Fire closes it. The
// adapters use it for "the connection is back", "the session changed" and
// "the history changed", which any number of goroutines wait for and which
// happen again and again.
package signal

import "sync"

// Signal is a repeatable broadcast. The zero Signal is ready; it is safe for
// concurrent use.
type Signal struct {
	mu sync.Mutex    // guards ch
	ch chan struct{} // closed by the next Fire
}

// Wait returns a channel closed by the next Fire. Take it before looking at
// the state the signal announces, so that a change in between is not
// missed.
func (s *Signal) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Fire wakes every goroutine waiting on a channel Wait returned. It never
// blocks.
func (s *Signal) Fire() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
	}
	s.ch = make(chan struct{})
	s.mu.Unlock()
}
