// Package backoff computes capped exponential backoff with full jitter, the
// retry schedule every regchain loop uses (keepalives, watch resumes,
// replays). It never gives up: callers retry for as long as their work lives.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff yields growing, jittered delays. The zero value uses Base 100ms and
// Max 10s. It is not safe for concurrent use: keep one per loop.
type Backoff struct {
	// Base is the first delay's upper bound. If zero, 100ms.
	Base time.Duration
	// Max caps every delay. If zero, 10s.
	Max time.Duration

	attempt int
}

// Next returns the delay before the next attempt: uniformly random in
// [d/2, d] where d = min(Max, Base·2^attempts), so retries spread out without
// ever dropping to zero.
func (b *Backoff) Next() time.Duration {
	base, max := b.Base, b.Max
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if max <= 0 {
		max = 10 * time.Second
	}
	d := base
	for i := 0; i < b.attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	b.attempt++
	half := d / 2
	return half + rand.N(d-half+1)
}

// Attempts returns how many delays Next has handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.attempt }

// Reset starts the schedule over after a success.
func (b *Backoff) Reset() { b.attempt = 0 }
