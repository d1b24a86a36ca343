package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
)

// Limits enforced by Validate. Backends with tighter limits (Consul metadata)
// check those in addition.
const (
	// MaxNameLen is the longest service name.
	MaxNameLen = 200
	// MaxIDLen is the longest instance ID.
	MaxIDLen = 256
	// MaxVersionLen is the longest version string.
	MaxVersionLen = 256
	// MaxEndpoints is the most endpoints one instance may have.
	MaxEndpoints = 64
	// MaxEndpointLen is the longest endpoint URL.
	MaxEndpointLen = 2048
	// MaxMetadataKeyLen is the longest metadata key.
	MaxMetadataKeyLen = 256
	// MaxMetadataSize is the most bytes all metadata keys and values may add
	// up to. It leaves room for Go-Micro's endpoint descriptors while keeping
	// every record well under etcd's and ZooKeeper's value limits.
	MaxMetadataSize = 256 << 10
	// MaxRecordSize is the largest encoded Instance a decoder accepts.
	MaxRecordSize = 1 << 20
)

// ValidateName returns nil if name is a valid service name: 1 to MaxNameLen
// bytes of ASCII letters, digits, '.', '_', '-' and ':', not starting with '.'
// or '-'. The set is what every backend can use as a key segment, a Consul
// service name and a ZooKeeper node name, and covers Kratos ("helloworld") and
// Go-Micro ("go.micro.srv.greeter") conventions.
func ValidateName(name string) error {
	if err := checkToken("service name", name, MaxNameLen); err != nil {
		return err
	}
	return nil
}

// ValidateWatch returns nil if Watch may be given name: "" (every service)
// or a valid service name (ValidateName).
func ValidateWatch(name string) error {
	if name == "" {
		return nil
	}
	return ValidateName(name)
}

// ValidateID returns nil if id is a valid instance ID (same rules as names,
// up to MaxIDLen bytes).
func ValidateID(id string) error {
	return checkToken("instance id", id, MaxIDLen)
}

func checkToken(what, s string, max int) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, what)
	}
	if len(s) > max {
		return fmt.Errorf("%w: %s is %d bytes, longer than %d", ErrInvalid, what, len(s), max)
	}
	if s[0] == '.' || s[0] == '-' {
		return fmt.Errorf("%w: %s %s starts with %q", ErrInvalid, what, Quote(s), s[0])
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':' {
			continue
		}
		return fmt.Errorf("%w: %s %s has %q at byte %d (allowed: letters, digits, '.', '_', '-', ':')", ErrInvalid, what, Quote(s), c, i)
	}
	return nil
}

// ValidateKey returns nil if in identifies an instance: not nil, with a
// valid Name and ID. Deregister needs no more than that.
func ValidateKey(in *Instance) error {
	if in == nil {
		return fmt.Errorf("%w: nil instance", ErrInvalid)
	}
	if err := ValidateName(in.Name); err != nil {
		return err
	}
	return ValidateID(in.ID)
}

// Validate returns nil if in can be registered: a valid name and ID, a version
// of at most MaxVersionLen bytes without control characters, 1 to
// MaxEndpoints endpoints that parse as URLs with a scheme and a host, and
// metadata within MaxMetadataKeyLen and MaxMetadataSize. Errors wrap
// ErrInvalid and say what is wrong.
func Validate(in *Instance) error {
	if err := ValidateKey(in); err != nil {
		return err
	}
	if len(in.Version) > MaxVersionLen {
		return fmt.Errorf("%w: %s: version is %d bytes, longer than %d", ErrInvalid, in.Key(), len(in.Version), MaxVersionLen)
	}
	for i := 0; i < len(in.Version); i++ {
		if c := in.Version[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: %s: version has control character %q", ErrInvalid, in.Key(), c)
		}
	}
	if len(in.Endpoints) == 0 {
		return fmt.Errorf("%w: %s: no endpoints", ErrInvalid, in)
	}
	if len(in.Endpoints) > MaxEndpoints {
		return fmt.Errorf("%w: %s: %d endpoints, more than %d", ErrInvalid, in, len(in.Endpoints), MaxEndpoints)
	}
	for _, ep := range in.Endpoints {
		if err := validateEndpoint(ep); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalid, in, err)
		}
	}
	size := 0
	for k, v := range in.Metadata {
		if k == "" {
			return fmt.Errorf("%w: %s: empty metadata key", ErrInvalid, in)
		}
		if len(k) > MaxMetadataKeyLen {
			return fmt.Errorf("%w: %s: metadata key %s is %d bytes, longer than %d", ErrInvalid, in, Quote(k), len(k), MaxMetadataKeyLen)
		}
		size += len(k) + len(v)
	}
	if size > MaxMetadataSize {
		return fmt.Errorf("%w: %s: metadata is %d bytes, more than %d", ErrInvalid, in, size, MaxMetadataSize)
	}
	return nil
}

func validateEndpoint(ep string) error {
	if len(ep) > MaxEndpointLen {
		return fmt.Errorf("endpoint is %d bytes, longer than %d", len(ep), MaxEndpointLen)
	}
	u, err := url.Parse(ep)
	if err == nil && u.Scheme != "" && u.Host != "" {
		return nil
	}
	msg := fmt.Sprintf("endpoint %s is not a URL with a scheme and a host (like grpc://10.0.0.1:9000)", Quote(ep))
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("%s: %w", msg, err)
	}
	return errors.New(msg)
}

// Marshal validates in and returns its JSON encoding (Kratos' ServiceInstance
// layout).
func Marshal(in *Instance) ([]byte, error) {
	if err := Validate(in); err != nil {
		return nil, err
	}
	return json.Marshal(in)
}

// Unmarshal decodes a stored Instance record. Records that are not JSON
// objects, exceed MaxRecordSize or do not pass Validate return an error
// wrapping ErrInvalid; it never panics.
func Unmarshal(data []byte) (*Instance, error) {
	if len(data) > MaxRecordSize {
		return nil, fmt.Errorf("%w: record is %d bytes, more than %d", ErrInvalid, len(data), MaxRecordSize)
	}
	in := new(Instance)
	if err := json.Unmarshal(data, in); err != nil {
		return nil, fmt.Errorf("%w: decode instance: %s", ErrInvalid, Quote(err.Error()))
	}
	if err := Validate(in); err != nil {
		return nil, fmt.Errorf("decode instance: %w", err)
	}
	return in, nil
}
