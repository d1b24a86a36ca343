package nearest

import (
	"strings"
	"time"
)

// AttemptBudget is a client door's attempt timeouts as its RetryConfig
// sets them (grpcbalancer, kratosplugin and microservice share it): a
// fixed timeout, the adaptive one of rule 8, or none. It is safe for
// concurrent use.
type AttemptBudget struct {
	fixed    time.Duration
	adaptive *AttemptTimeouts // nil: fixed or none
}

// NewAttemptBudget returns the budget of a door's AttemptTimeout: zero
// adapts to each operation (AttemptTimeouts with its defaults), a positive
// duration bounds every attempt but the last, a negative one bounds none.
func NewAttemptBudget(timeout time.Duration) *AttemptBudget {
	b := &AttemptBudget{fixed: timeout}
	if timeout == 0 {
		b.adaptive = &AttemptTimeouts{}
	}
	return b
}

// Bounded reports whether attempts get timeouts of their own at all.
func (b *AttemptBudget) Bounded() bool { return b.fixed >= 0 }

// Timeout returns the timeout of an attempt of op that is not the last of
// its call (the last keeps the rest of the call's deadline): 0 for none.
func (b *AttemptBudget) Timeout(op string) time.Duration {
	switch {
	case b.fixed < 0:
		return 0
	case b.adaptive != nil:
		return b.adaptive.Timeout(op)
	default:
		return b.fixed
	}
}

// Observe records a successful attempt of op that took d.
func (b *AttemptBudget) Observe(op string, d time.Duration) {
	if b.adaptive != nil {
		b.adaptive.Observe(op, d)
	}
}

// MatchMethod reports whether a gRPC full method "/pkg.Service/Method" is
// in list: named exactly, or under an entry "/pkg.Service/" that names its
// service.
func MatchMethod(method string, list []string) bool {
	for _, m := range list {
		if method == m || (strings.HasSuffix(m, "/") && strings.HasPrefix(method, m)) {
			return true
		}
	}
	return false
}
