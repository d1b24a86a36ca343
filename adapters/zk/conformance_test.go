package zk_test

import (
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func TestConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		return newRegistry(t, nil, zk.Config{})
	})
}

// With digest credentials every node gets a restrictive ACL; the contract
// holds all the same.
func TestConformanceDigest(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		return newRegistry(t, nil, zk.Config{Username: "regchain", Password: "s3cret"})
	})
}

// A connection passed in: the Registry polls its state and leaves it open.
func TestConformanceSharedConn(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		return newRegistry(t, nil, zk.Config{Client: server(t).Connect(t, 2*time.Second)})
	})
}

// A Registry whose root is another's, guarded by digest credentials it
// does not have: its writes are refused (ErrNoAuth), as ErrInvalid, and not
// retried.
func TestConformanceReadOnly(t *testing.T) {
	root := uniqueRoot(t)
	owner := newRegistry(t, nil, zk.Config{Namespace: root, Username: "svc", Password: "s3cret"})
	register(t, owner, instance("owned", "o1", 7700)) // creates the guarded root
	registrytest.RunReadOnly(t, func(t *testing.T) registry.Registry {
		return newRegistry(t, nil, zk.Config{Namespace: root})
	})
}
