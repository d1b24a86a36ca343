package consul

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/registry"
)

// Consul's limits on service metadata (agent/structs: validateMetadata).
const (
	// MaxMetaPairs is the most Meta entries a Consul service may have.
	MaxMetaPairs = 64
	// MaxMetaKeyLen is the longest Meta key Consul accepts.
	MaxMetaKeyLen = 128
	// MaxMetaValueLen is the longest Meta value Consul accepts, in bytes.
	MaxMetaValueLen = 512

	consulReservedPrefix = "consul-" // Consul rejects Meta keys with this prefix
)

// Reserved Meta keys. Only these exact keys (and metaSpillPrefix followed by
// decimal digits) are read back as encoding; a user key that looks like one
// is itself spilled, so nothing is ambiguous.
const (
	// MetaInstanceID holds the instance ID when the Consul service ID differs
	// from it (see doc.go: Service IDs).
	MetaInstanceID = "regchain-id"
	// MetaSpillPrefix starts the keys "regchain-md-0", "regchain-md-1", ...
	// whose values, concatenated, are a JSON object of the metadata entries
	// Consul's Meta cannot hold as they are.
	MetaSpillPrefix = "regchain-md-"
)

// versionTag prefixes the tag carrying Instance.Version, as Kratos writes it.
const versionTag = "version="

// Tagged addresses the agent adds by itself (from the service address); they
// are not endpoints.
var agentTaggedAddresses = map[string]bool{
	"lan_ipv4": true, "wan_ipv4": true, "lan_ipv6": true, "wan_ipv6": true,
}

// encode maps a valid instance to an agent service registration under the
// Consul service ID sid (the caller adds the check). It returns an error
// wrapping registry.ErrInvalid when the instance does not fit Consul's
// limits; the result does not depend on whether sid equals in.ID beyond the
// instance-ID marker, which always has a slot reserved.
func encode(in *registry.Instance, sid string) (*consulapi.AgentServiceRegistration, error) {
	meta, err := encodeMeta(in.Metadata)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", registry.ErrInvalid, in, err)
	}
	if sid != in.ID {
		if meta == nil {
			meta = make(map[string]string, 1)
		}
		meta[MetaInstanceID] = in.ID
	}
	asr := &consulapi.AgentServiceRegistration{
		ID:              sid,
		Name:            in.Name,
		Tags:            []string{versionTag + in.Version},
		Meta:            meta,
		TaggedAddresses: make(map[string]consulapi.ServiceAddress, len(in.Endpoints)),
	}
	perScheme := make(map[string]int)
	for i, ep := range in.Endpoints {
		u, err := url.Parse(ep)
		if err != nil { // Validate parsed it already
			return nil, fmt.Errorf("%w: %s: endpoint %s: %w", registry.ErrInvalid, in, registry.Quote(ep), err)
		}
		port, _ := strconv.ParseUint(u.Port(), 10, 16) // no port: 0, as Kratos does
		key := u.Scheme
		if n := perScheme[u.Scheme]; n > 0 {
			key = u.Scheme + "_" + strconv.Itoa(n)
		}
		perScheme[u.Scheme]++
		asr.TaggedAddresses[key] = consulapi.ServiceAddress{Address: ep, Port: int(port)}
		if i == 0 {
			asr.Address = u.Hostname()
			asr.Port = int(port)
		}
	}
	return asr, nil
}

// nativeMetaOK reports whether k=v can be a Consul Meta entry as it is.
func nativeMetaOK(k, v string) bool {
	if k == "" || len(k) > MaxMetaKeyLen || len(v) > MaxMetaValueLen {
		return false
	}
	if strings.HasPrefix(k, consulReservedPrefix) || isReservedKey(k) {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// isReservedKey reports whether k is one of the encoding's own Meta keys.
func isReservedKey(k string) bool {
	_, ok := spillIndex(k)
	return ok || k == MetaInstanceID
}

// spillIndex returns n for the key MetaSpillPrefix+n.
func spillIndex(k string) (int, bool) {
	s, ok := strings.CutPrefix(k, MetaSpillPrefix)
	if !ok || s == "" || len(s) > 2 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n >= MaxMetaPairs {
		return 0, false
	}
	return n, true
}

// encodeMeta maps metadata to Consul Meta: entries that Consul accepts as
// they are stay native (in key order, as many as fit); the rest are spilled
// into a JSON object split over MetaSpillPrefix keys. One slot is always
// left for MetaInstanceID. It fails when even an all-spilled encoding needs
// more than the slots Consul allows.
func encodeMeta(md map[string]string) (map[string]string, error) {
	if len(md) == 0 {
		return nil, nil
	}
	const slots = MaxMetaPairs - 1 // one kept for MetaInstanceID
	keys := slices.Sorted(maps.Keys(md))
	var native, spilled []string
	for _, k := range keys {
		if nativeMetaOK(k, md[k]) {
			native = append(native, k)
		} else {
			spilled = append(spilled, k)
		}
	}
	if len(native) > slots {
		spilled = append(spilled, native[slots:]...)
		native = native[:slots]
	}
	for {
		chunks, err := spillChunks(md, spilled)
		if err != nil {
			return nil, err
		}
		if len(native)+len(chunks) <= slots {
			out := make(map[string]string, len(native)+len(chunks))
			for _, k := range native {
				out[k] = md[k]
			}
			for i, c := range chunks {
				out[MetaSpillPrefix+strconv.Itoa(i)] = c
			}
			return out, nil
		}
		if len(native) == 0 {
			total := 0
			for _, c := range chunks {
				total += len(c)
			}
			return nil, fmt.Errorf("metadata does not fit Consul service meta: it needs %d entries of up to %d bytes (%d bytes encoded), at most %d are available (Consul allows %d)",
				len(chunks), MaxMetaValueLen, total, slots, MaxMetaPairs)
		}
		// Move the last native entry into the spill and try again.
		spilled = append(spilled, native[len(native)-1])
		native = native[:len(native)-1]
	}
}

// spillChunks encodes the entries keys of md as one JSON object cut into
// values of at most MaxMetaValueLen bytes, never inside a UTF-8 sequence.
func spillChunks(md map[string]string, keys []string) ([]string, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	sub := make(map[string]string, len(keys))
	for _, k := range keys {
		sub[k] = md[k]
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(sub); err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	data := bytes.TrimRight(buf.Bytes(), "\n")
	var chunks []string
	for len(data) > 0 {
		n := min(len(data), MaxMetaValueLen)
		if n < len(data) {
			for n > 0 && !utf8.RuneStart(data[n]) {
				n--
			}
			if n == 0 { // not UTF-8 (json.Encoder never writes that)
				n = MaxMetaValueLen
			}
		}
		chunks = append(chunks, string(data[:n]))
		data = data[n:]
	}
	return chunks, nil
}

// decode maps a Consul service (written by regchain, by Kratos' contrib
// registry or by anything else) to an Instance. nodeAddr is the address of
// the service's node, used for services that have no address of their own.
// It never panics; an error wraps registry.ErrInvalid.
func decode(s *consulapi.AgentService, nodeAddr string) (*registry.Instance, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil service", registry.ErrInvalid)
	}
	in := &registry.Instance{ID: s.ID, Name: s.Service}
	for _, tag := range s.Tags {
		if v, ok := strings.CutPrefix(tag, versionTag); ok {
			in.Version = v // the last one wins, as in Kratos' resolver
		}
	}
	md := make(map[string]string, len(s.Meta))
	var chunks map[int]string
	for k, v := range s.Meta {
		if k == MetaInstanceID {
			in.ID = v
			continue
		}
		if n, ok := spillIndex(k); ok {
			if chunks == nil {
				chunks = make(map[int]string)
			}
			chunks[n] = v
			continue
		}
		md[k] = v
	}
	if len(chunks) > 0 {
		var b strings.Builder
		for i := range len(chunks) {
			c, ok := chunks[i]
			if !ok {
				return nil, fmt.Errorf("%w: consul service %s: metadata chunk %s%d missing", registry.ErrInvalid, registry.Quote(s.ID), MetaSpillPrefix, i)
			}
			b.WriteString(c)
		}
		var spilled map[string]string
		if err := json.Unmarshal([]byte(b.String()), &spilled); err != nil {
			return nil, fmt.Errorf("%w: consul service %s: spilled metadata: %s", registry.ErrInvalid, registry.Quote(s.ID), registry.Quote(err.Error()))
		}
		maps.Copy(md, spilled)
	}
	if len(md) > 0 {
		in.Metadata = md
	}

	type tagged struct {
		scheme string
		n      int
		addr   string
	}
	var eps []tagged
	for k, a := range s.TaggedAddresses {
		if agentTaggedAddresses[k] || !isEndpoint(a.Address) {
			continue
		}
		scheme, n := k, 0
		if i := strings.LastIndexByte(k, '_'); i > 0 {
			if v, err := strconv.Atoi(k[i+1:]); err == nil && v > 0 {
				scheme, n = k[:i], v
			}
		}
		eps = append(eps, tagged{scheme, n, a.Address})
	}
	slices.SortFunc(eps, func(a, b tagged) int {
		if c := strings.Compare(a.scheme, b.scheme); c != 0 {
			return c
		}
		if a.n != b.n {
			return a.n - b.n
		}
		return strings.Compare(a.addr, b.addr)
	})
	for _, e := range eps {
		in.Endpoints = append(in.Endpoints, e.addr)
	}
	if len(in.Endpoints) == 0 && s.Port > 0 {
		// A service registered without tagged addresses (not by Kratos or
		// regchain): its address and port, as Kratos' resolver reads it.
		host := s.Address
		if host == "" {
			host = nodeAddr
		}
		if host != "" {
			in.Endpoints = []string{"http://" + net.JoinHostPort(host, strconv.Itoa(s.Port))}
		}
	}
	if err := registry.Validate(in); err != nil {
		return nil, fmt.Errorf("consul service %s: %w", registry.Quote(s.ID), err)
	}
	return in, nil
}

// isEndpoint reports whether s is a URL with a scheme and a host, as
// regchain and Kratos store endpoints in tagged addresses.
func isEndpoint(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Host != ""
}
