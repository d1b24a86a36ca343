package etcd

import (
	"fmt"

	"github.com/regchain/regchain/registry"
)

// Codec is the record layout: how an Instance is stored in etcd and read
// back. Every layout keeps one record per instance under the key
// <Namespace>/<name>/<id> (reads are prefix ranges of a service's keys);
// the Codec names its default Namespace and makes the value.
//
// The default, KratosCodec, is the layout of Kratos' contrib etcd
// registry. The go-micro etcd plugin's layout is package microplugin's
// EtcdCodec, so that go-micro's mapping lives in one place:
//
//	etcd.New(etcd.Config{Endpoints: eps, Codec: microplugin.EtcdCodec{}}) // under /micro/registry
//
// A Codec's methods are called concurrently. Codec values should be
// comparable (microplugin/etcdchain compares them between Inits).
type Codec interface {
	// Namespace returns the layout's key prefix, the registry's when
	// Config.Namespace is empty.
	Namespace() string
	// Encode returns the value stored for in, which passed
	// registry.Validate; an error wrapping registry.ErrInvalid refuses the
	// instance (nothing is written).
	Encode(in *registry.Instance) ([]byte, error)
	// Decode returns the Instance a stored value holds, or an error
	// wrapping registry.ErrInvalid for a value it cannot read (the record
	// is skipped and logged). value comes from etcd, written by any
	// client: Decode bounds what it reads, and its error holds no raw
	// bytes of it.
	Decode(value []byte) (*registry.Instance, error)
}

// KratosCodec is the default Codec: each instance stored as its JSON
// (registry.Marshal), the layout of Kratos' contrib etcd registry, under
// DefaultNamespace.
type KratosCodec struct{}

// Namespace implements Codec: DefaultNamespace.
func (KratosCodec) Namespace() string { return DefaultNamespace }

// Encode implements Codec.
func (KratosCodec) Encode(in *registry.Instance) ([]byte, error) { return registry.Marshal(in) }

// Decode implements Codec.
func (KratosCodec) Decode(value []byte) (*registry.Instance, error) { return registry.Unmarshal(value) }

// MicroNamespace is the go-micro etcd plugin's key prefix (microplugin's
// EtcdNamespace): the registry looks there when a read finds nothing (see
// the package doc, "Two layouts").
const MicroNamespace = "/micro/registry"

// marshal encodes in with the registry's codec.
func (r *Registry) marshal(in *registry.Instance) ([]byte, error) {
	if !r.readsMicro() {
		return registry.Marshal(in)
	}
	if err := registry.Validate(in); err != nil {
		return nil, err
	}
	return r.codec.Encode(in)
}

// unmarshal decodes a record with the registry's codec: a record over
// registry.MaxRecordSize is refused before the codec sees it, and what a
// codec other than the default (which validates) returns is validated.
func (r *Registry) unmarshal(data []byte) (*registry.Instance, error) {
	if !r.readsMicro() {
		return registry.Unmarshal(data)
	}
	if len(data) > registry.MaxRecordSize {
		return nil, fmt.Errorf("%w: record is %d bytes, more than %d", registry.ErrInvalid, len(data), registry.MaxRecordSize)
	}
	in, err := r.codec.Decode(data)
	if err != nil {
		return nil, err
	}
	if in == nil {
		return nil, fmt.Errorf("%w: the codec decoded no instance", registry.ErrInvalid)
	}
	if err := registry.Validate(in); err != nil {
		return nil, err
	}
	return in, nil
}

// readsMicro reports whether the registry's codec reads the go-micro
// plugin's records: any codec but the default (KratosCodec, or none) is
// taken to, so that a go-micro record it cannot decode is logged as
// malformed.
func (r *Registry) readsMicro() bool { return r.codec != nil && r.codec != Codec(KratosCodec{}) }
