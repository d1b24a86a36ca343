package file

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"time"

	"github.com/regchain/regchain/registry"
)

// Registry records: key "name/id" (neither may contain '/'), value the
// instance's JSON (registry.Marshal, Kratos' layout), so bbolt's own tools
// show readable records.

func recordKey(name, id string) []byte { return []byte(name + "/" + id) }

// decodeRecord decodes the Registry record stored under key. It returns an
// error wrapping registry.ErrInvalid for anything but a valid instance whose
// name and ID match the key; it never panics.
func decodeRecord(key, value []byte) (*registry.Instance, error) {
	name, id, ok := strings.Cut(string(key), "/")
	if !ok {
		return nil, fmt.Errorf("%w: record key %s is not name/id", registry.ErrInvalid, registry.Quote(string(key)))
	}
	in, err := registry.Unmarshal(value)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", registry.Quote(string(key)), err)
	}
	if in.Name != name || in.ID != id {
		return nil, fmt.Errorf("%w: record %s holds instance %s", registry.ErrInvalid, registry.Quote(string(key)), in.Key())
	}
	return in, nil
}

// Snapshot entries: key the service name, value a compact binary encoding
// of one Update, checked by a CRC. For 1,000 services of 10 instances it
// is 40% smaller than JSON (1.3 MB against 2.3 MB) and four times faster to
// decode (about 14 ms against 57 ms on two cores), which matters for
// loading the snapshot of a large fleet at startup.
//
//	byte     entryFormat
//	varint   saved: Unix seconds; uvarint nanoseconds
//	varint   update time: Unix seconds; uvarint nanoseconds
//	varint   revision
//	string   source
//	uvarint  instance count, then per instance, sorted by ID:
//	         string id, string version,
//	         uvarint endpoint count, strings,
//	         uvarint metadata count, key and value strings sorted by key
//	uint32   CRC-32C (Castagnoli) of the key and everything before, little-endian
//
// A string is a uvarint length and the bytes. Instance names are not
// stored: they are the key, which the CRC covers too, so that damage to a
// key is not taken for another service.
const (
	entryFormat = 1
	// maxSourceLen bounds Update.Source; sources are short names.
	maxSourceLen = 256
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkUpdate validates u for SaveSnapshot and returns its instances sorted
// by ID (a new slice: u is not modified).
func checkUpdate(u *registry.Update) ([]*registry.Instance, error) {
	if u == nil {
		return nil, fmt.Errorf("%w: nil update", registry.ErrInvalid)
	}
	if err := registry.ValidateName(u.Service); err != nil {
		return nil, err
	}
	if len(u.Source) > maxSourceLen {
		return nil, fmt.Errorf("%w: update of %s: source is %d bytes, longer than %d", registry.ErrInvalid, registry.Quote(u.Service), len(u.Source), maxSourceLen)
	}
	ins := slices.Clone(u.Instances)
	for _, in := range ins {
		if err := registry.Validate(in); err != nil {
			return nil, fmt.Errorf("update of %s: %w", registry.Quote(u.Service), err)
		}
		if in.Name != u.Service {
			return nil, fmt.Errorf("%w: update of %s holds instance %s of another service", registry.ErrInvalid, registry.Quote(u.Service), in)
		}
	}
	registry.SortInstances(ins)
	for i := 1; i < len(ins); i++ {
		if ins[i].ID == ins[i-1].ID {
			return nil, fmt.Errorf("%w: update of %s holds instance %s twice", registry.ErrInvalid, registry.Quote(u.Service), registry.Quote(ins[i].ID))
		}
	}
	return ins, nil
}

// appendEntry appends the encoding of u (with instances ins, sorted and
// checked by checkUpdate) saved at saved.
func appendEntry(b []byte, saved time.Time, u *registry.Update, ins []*registry.Instance) []byte {
	start := len(b)
	b = append(b, entryFormat)
	b = appendTime(b, saved)
	b = appendTime(b, u.Time)
	b = binary.AppendVarint(b, u.Revision)
	b = appendString(b, u.Source)
	b = binary.AppendUvarint(b, uint64(len(ins)))
	var keys []string
	for _, in := range ins {
		b = appendString(b, in.ID)
		b = appendString(b, in.Version)
		b = binary.AppendUvarint(b, uint64(len(in.Endpoints)))
		for _, ep := range in.Endpoints {
			b = appendString(b, ep)
		}
		b = binary.AppendUvarint(b, uint64(len(in.Metadata)))
		keys = keys[:0]
		for k := range in.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = appendString(b, k)
			b = appendString(b, in.Metadata[k])
		}
	}
	return binary.LittleEndian.AppendUint32(b, entrySum(u.Service, b[start:]))
}

// entrySum is the CRC of an entry: its key, then its body.
func entrySum(service string, body []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, []byte(service)), castagnoli, body)
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeEntry decodes the snapshot entry stored under service. Errors wrap
// registry.ErrInvalid; it never panics. The strings of the result share one
// allocation.
func decodeEntry(service string, data []byte) (registry.SnapshotEntry, error) {
	fail := func(format string, args ...any) (registry.SnapshotEntry, error) {
		return registry.SnapshotEntry{}, fmt.Errorf("%w: snapshot entry %s: %s", registry.ErrInvalid, registry.Quote(service), fmt.Sprintf(format, args...))
	}
	if err := registry.ValidateName(service); err != nil {
		return fail("bad key: %v", err)
	}
	if len(data) < 5 {
		return fail("%d bytes is too short", len(data))
	}
	body := data[:len(data)-4]
	if got, want := entrySum(service, body), binary.LittleEndian.Uint32(data[len(body):]); got != want {
		return fail("checksum %08x, want %08x", got, want)
	}
	if body[0] != entryFormat {
		return fail("format %d, want %d", body[0], entryFormat)
	}
	d := decoder{s: string(body[1:])}
	saved := d.time()
	u := &registry.Update{Service: service, Time: d.time(), Revision: d.varint(), Source: d.string()}
	if len(u.Source) > maxSourceLen {
		return fail("source is %d bytes, longer than %d", len(u.Source), maxSourceLen)
	}
	// Each instance takes at least four bytes: bound the allocation by
	// what the data can hold.
	n := d.count(4)
	if d.err != nil {
		return fail("%v", d.err)
	}
	vals := make([]registry.Instance, n)
	u.Instances = make([]*registry.Instance, n)
	// All endpoints of the entry share one array; each instance's slice is
	// capped so that appending to it reallocates.
	eps := make([]string, 0, 2*n)
	for i := range vals {
		in := &vals[i]
		in.Name = service
		in.ID = d.string()
		in.Version = d.string()
		neps := d.count(1)
		if d.err != nil {
			return fail("instance %d: %v", i, d.err)
		}
		start := len(eps)
		for range neps {
			eps = append(eps, d.string())
		}
		in.Endpoints = eps[start:len(eps):len(eps)]
		if nm := d.count(2); nm > 0 && d.err == nil {
			in.Metadata = make(map[string]string, nm)
			for range nm {
				k := d.string()
				in.Metadata[k] = d.string()
			}
			if len(in.Metadata) != nm && d.err == nil {
				return fail("instance %s: duplicate metadata key", registry.Quote(in.ID))
			}
		}
		if d.err != nil {
			return fail("instance %d: %v", i, d.err)
		}
		if err := validateStored(in); err != nil {
			return fail("instance %d: %v", i, err)
		}
		if i > 0 && vals[i-1].ID >= in.ID {
			return fail("instance %s: not sorted by ID after %s", registry.Quote(in.ID), registry.Quote(vals[i-1].ID))
		}
		u.Instances[i] = in
	}
	if d.err == nil && len(d.s) > 0 {
		return fail("%d trailing bytes", len(d.s))
	}
	if d.err != nil {
		return fail("%v", d.err)
	}
	return registry.SnapshotEntry{Update: u, Saved: saved}, nil
}

// validateStored checks a decoded instance like registry.Validate, except
// that endpoints are only checked for the shape scheme://host rather than
// parsed as URLs: SaveSnapshot validated them in full, the CRC proves the
// entry is what it saved, and parsing 20,000 URLs would double the time to
// load a large snapshot.
func validateStored(in *registry.Instance) error {
	if err := registry.ValidateID(in.ID); err != nil {
		return err
	}
	if len(in.Version) > registry.MaxVersionLen || strings.ContainsFunc(in.Version, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("bad version %.32q", in.Version)
	}
	if len(in.Endpoints) == 0 || len(in.Endpoints) > registry.MaxEndpoints {
		return fmt.Errorf("%d endpoints", len(in.Endpoints))
	}
	for _, ep := range in.Endpoints {
		if i := strings.Index(ep, "://"); i <= 0 || i+3 == len(ep) || len(ep) > registry.MaxEndpointLen {
			return fmt.Errorf("endpoint %.64q is not scheme://host", ep)
		}
	}
	size := 0
	for k, v := range in.Metadata {
		if k == "" || len(k) > registry.MaxMetadataKeyLen {
			return fmt.Errorf("bad metadata key %.32q", k)
		}
		size += len(k) + len(v)
	}
	if size > registry.MaxMetadataSize {
		return fmt.Errorf("metadata is %d bytes, more than %d", size, registry.MaxMetadataSize)
	}
	return nil
}

// decoder reads the fields of an entry from s. The first error sticks;
// later reads return zero values.
type decoder struct {
	s   string
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var x uint64
	for i := 0; i < len(d.s) && i < binary.MaxVarintLen64; i++ {
		c := d.s[i]
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			d.s = d.s[i+1:]
			return x
		}
	}
	d.err = fmt.Errorf("bad varint")
	return 0
}

func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

// count reads an element count; each element takes at least min bytes.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.s)/min) {
		d.err = fmt.Errorf("count %d exceeds the %d bytes left", n, len(d.s))
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.s)) {
		d.err = fmt.Errorf("string of %d bytes exceeds the %d bytes left", n, len(d.s))
		return ""
	}
	s := d.s[:n]
	d.s = d.s[n:]
	return s
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if d.err == nil && nsec >= 1e9 {
		d.err = fmt.Errorf("nanoseconds %d out of range", nsec)
	}
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec))
}
