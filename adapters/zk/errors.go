package zk

import (
	"context"
	"errors"
	"fmt"

	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/registry"
)

// classify wraps err from operation op with the sentinel it stands for;
// closed says the Registry is closed.
func classify(closed bool, op string, err error) error {
	switch {
	case closed || errors.Is(err, registry.ErrClosed):
		return fmt.Errorf("zookeeper: %s: %w", op, registry.ErrClosed)
	case unavailable(err):
		return fmt.Errorf("zookeeper: %s: %w: %w", op, registry.ErrUnavailable, err)
	case refused(err):
		return fmt.Errorf("zookeeper: %s: %w: %w", op, registry.ErrInvalid, err)
	default:
		return fmt.Errorf("zookeeper: %s: %w", op, err)
	}
}

// answers are the errors that are ZooKeeper's answer to a request (or the
// caller's own cancellation) rather than a sign that it cannot be reached.
var answers = []error{
	gozk.ErrNoNode, gozk.ErrNoAuth, gozk.ErrBadVersion, gozk.ErrNoChildrenForEphemerals,
	gozk.ErrNodeExists, gozk.ErrNotEmpty, gozk.ErrInvalidACL, gozk.ErrInvalidFlags,
	gozk.ErrAuthFailed, gozk.ErrInvalidPath, gozk.ErrBadArguments, gozk.ErrAPIError,
	registry.ErrInvalid, registry.ErrClosed, context.Canceled,
}

// refused reports whether err is ZooKeeper refusing the request for its
// credentials or ACLs: a configuration problem no retry changes.
func refused(err error) bool {
	return errors.Is(err, gozk.ErrNoAuth) || errors.Is(err, gozk.ErrAuthFailed) || errors.Is(err, gozk.ErrInvalidACL)
}

// unavailable reports whether err means ZooKeeper could not be reached or did
// not answer in time: no server, connection closed, session expired or moved,
// a timeout, a network error, a server-side system error.
func unavailable(err error) bool {
	for _, a := range answers {
		if errors.Is(err, a) {
			return false
		}
	}
	return err != nil
}

// lostErr is what the watchers of name are told while there is no session.
func lostErr(name string, state gozk.State) error {
	return fmt.Errorf("zookeeper: watch %s: %w: connection lost (%v)", registry.Quote(name), registry.ErrUnavailable, state)
}
