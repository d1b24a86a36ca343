package file

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"

	"github.com/regchain/regchain/registry"
)

// bbolt's on-disk format (version 2, native byte order), as far as verify
// needs it. bbolt checksums its meta pages but not its data pages; a damaged
// branch page can point anywhere, including at itself, and bbolt would then
// loop, recurse without end or read outside the file. verify walks the page
// tree once, bounded, before bbolt does.
const (
	pageHeaderSize  = 16 // id u64, flags u16, count u16, overflow u32
	elementSize     = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	bucketHeaderLen = 16 // root pgid u64, sequence u64

	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01

	boltMagic     = 0xED0CDAED
	boltVersion   = 2
	noFreelist    = ^uint64(0)
	metaOffset    = pageHeaderSize
	metaSumLength = 56 // the meta's bytes before its checksum: magic, version, page size, flags, root, freelist, pgid, txid
)

var ne = binary.NativeEndian

type verifier struct {
	data     []byte
	pageSize uint64
	hwm      uint64 // high water mark: pages in use are below it
	seen     []bool // pages already reached
}

// meta is what verify needs of a bbolt meta page.
type meta struct {
	pageSize, root, freelist, hwm, txid uint64
}

// readMeta returns the meta page at offset off of data, if it is there
// and valid: magic, version and checksum.
func readMeta(data []byte, off uint64) (meta, bool) {
	if off > uint64(len(data)) || uint64(len(data))-off < metaOffset+metaSumLength+8 {
		return meta{}, false
	}
	m := data[off+metaOffset:]
	sum := fnv.New64a()
	sum.Write(m[:metaSumLength])
	if ne.Uint32(m[0:]) != boltMagic || ne.Uint32(m[4:]) != boltVersion || ne.Uint64(m[56:]) != sum.Sum64() {
		return meta{}, false
	}
	return meta{pageSize: uint64(ne.Uint32(m[8:])), root: ne.Uint64(m[16:]), freelist: ne.Uint64(m[32:]), hwm: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:])}, true
}

// verify checks the bbolt file image data as bbolt will read it: the page
// size and meta page bbolt will choose, and that every page reachable from
// its root is inside the file and below the high water mark, reached once,
// a branch or leaf page whose elements lie inside the page, with non-empty
// keys in order; that buckets nest only one level deep (regchain's
// layout); and that the freelist lists only unreached pages.
func verify(data []byte) error {
	// bbolt takes the page size from the first meta page, or else from a
	// second meta page at 1 KiB << i.
	m0, ok0 := readMeta(data, 0)
	pageSize := m0.pageSize
	if !ok0 {
		for i := range 15 {
			pos := uint64(1024) << i
			if pos+1024 >= uint64(len(data)) {
				break
			}
			if m, ok := readMeta(data, pos); ok {
				pageSize = m.pageSize
				break
			}
		}
	}
	if pageSize < 1024 || pageSize > 1<<24 {
		return fmt.Errorf("no valid meta page (not a bbolt file?)")
	}
	if uint64(len(data)) < 2*pageSize {
		return fmt.Errorf("file of %d bytes is too small for two meta pages of %d bytes", len(data), pageSize)
	}
	// Of the two meta pages, bbolt uses the valid one with the higher txid.
	m1, ok1 := readMeta(data, pageSize)
	m := m0
	if !ok0 || ok1 && m1.txid > m0.txid {
		m = m1
	}
	if !ok0 && !ok1 {
		return fmt.Errorf("no valid meta page")
	}
	v := &verifier{data: data, pageSize: pageSize, hwm: m.hwm}
	root, freelist := m.root, m.freelist
	if v.hwm < 2 || v.hwm > uint64(len(data))/v.pageSize {
		return fmt.Errorf("high water mark of %d pages is beyond the file's %d bytes (truncated?)", v.hwm, len(data))
	}
	v.seen = make([]bool, v.hwm)
	v.seen[0], v.seen[1] = true, true
	var free []uint64
	if freelist != noFreelist {
		p, err := v.page(freelist, freelistPageFlag)
		if err != nil {
			return fmt.Errorf("freelist: %w", err)
		}
		if free, err = freelistIDs(p); err != nil {
			return fmt.Errorf("freelist page %d: %w", freelist, err)
		}
	}
	if err := v.tree(root, 0); err != nil {
		return err
	}
	dup := make(map[uint64]bool, len(free))
	for _, id := range free {
		switch {
		case id < 2 || id >= v.hwm:
			return fmt.Errorf("freelist lists page %d, outside [2, %d)", id, v.hwm)
		case v.seen[id]:
			return fmt.Errorf("freelist lists page %d, which is in use", id)
		case dup[id]:
			return fmt.Errorf("freelist lists page %d twice", id)
		}
		dup[id] = true
	}
	return nil
}

// page returns page id with its overflow pages, after checking its bounds,
// its header and that no other reference reached it before.
func (v *verifier) page(id uint64, flag uint16) ([]byte, error) {
	if id < 2 || id >= v.hwm {
		return nil, fmt.Errorf("page %d is outside [2, %d)", id, v.hwm)
	}
	start := id * v.pageSize
	hdr := v.data[start : start+pageHeaderSize]
	if got := ne.Uint64(hdr[0:]); got != id {
		return nil, fmt.Errorf("page %d says it is page %d", id, got)
	}
	if got := ne.Uint16(hdr[8:]); got != flag {
		return nil, fmt.Errorf("page %d has type %#x, want %#x", id, got, flag)
	}
	overflow := uint64(ne.Uint32(hdr[12:]))
	if id+overflow >= v.hwm {
		return nil, fmt.Errorf("page %d with %d overflow pages ends beyond page %d", id, overflow, v.hwm)
	}
	for i := id; i <= id+overflow; i++ {
		if v.seen[i] {
			return nil, fmt.Errorf("page %d is reached twice", i)
		}
		v.seen[i] = true
	}
	return v.data[start : start+(overflow+1)*v.pageSize], nil
}

// tree checks the B+tree rooted at page id; depth is the bucket nesting
// level of the tree (0 for bbolt's root bucket).
func (v *verifier) tree(id uint64, depth int) error {
	flag := uint16(leafPageFlag)
	if id < v.hwm && ne.Uint16(v.data[id*v.pageSize+8:]) == branchPageFlag {
		flag = branchPageFlag
	}
	p, err := v.page(id, flag)
	if err != nil {
		return err
	}
	if flag == leafPageFlag {
		return v.leaf(p, id, depth)
	}
	count := uint64(ne.Uint16(p[10:]))
	if count == 0 {
		return fmt.Errorf("branch page %d is empty", id)
	}
	if pageHeaderSize+count*elementSize > uint64(len(p)) {
		return fmt.Errorf("branch page %d: %d elements do not fit", id, count)
	}
	var prev []byte
	for i := range count {
		off := pageHeaderSize + i*elementSize
		e := p[off:]
		key, err := span(p, off+uint64(ne.Uint32(e[0:])), uint64(ne.Uint32(e[4:])))
		if err != nil {
			return fmt.Errorf("branch page %d element %d: key %w", id, i, err)
		}
		if len(key) == 0 || i > 0 && bytes.Compare(prev, key) >= 0 {
			return fmt.Errorf("branch page %d: empty key or keys out of order at element %d", id, i)
		}
		prev = key
		if err := v.tree(ne.Uint64(e[8:]), depth); err != nil {
			return err
		}
	}
	return nil
}

// leaf checks a leaf page p (page id, or 0 for an inline bucket's page).
func (v *verifier) leaf(p []byte, id uint64, depth int) error {
	count := uint64(ne.Uint16(p[10:]))
	if pageHeaderSize+count*elementSize > uint64(len(p)) {
		return fmt.Errorf("leaf page %d: %d elements do not fit", id, count)
	}
	var prev []byte
	for i := range count {
		off := pageHeaderSize + i*elementSize
		e := p[off:]
		ksize, vsize := uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
		kv, err := span(p, off+uint64(ne.Uint32(e[4:])), ksize+vsize)
		if err != nil {
			return fmt.Errorf("leaf page %d element %d: %w", id, i, err)
		}
		key, val := kv[:ksize], kv[ksize:]
		if len(key) == 0 || i > 0 && bytes.Compare(prev, key) >= 0 {
			return fmt.Errorf("leaf page %d: empty key or keys out of order at element %d", id, i)
		}
		prev = key
		if ne.Uint32(e[0:])&bucketLeafFlag == 0 {
			continue
		}
		if depth > 0 {
			return fmt.Errorf("leaf page %d: nested bucket %s (regchain nests none)", id, registry.Quote(string(key)))
		}
		if len(val) < bucketHeaderLen {
			return fmt.Errorf("leaf page %d: bucket %s header is %d bytes", id, registry.Quote(string(key)), len(val))
		}
		if root := ne.Uint64(val); root != 0 {
			if err := v.tree(root, depth+1); err != nil {
				return fmt.Errorf("bucket %s: %w", registry.Quote(string(key)), err)
			}
			continue
		}
		inline := val[bucketHeaderLen:]
		if len(inline) < pageHeaderSize || ne.Uint16(inline[8:]) != leafPageFlag {
			return fmt.Errorf("leaf page %d: bucket %s: bad inline page", id, registry.Quote(string(key)))
		}
		if err := v.leaf(inline, 0, depth+1); err != nil {
			return fmt.Errorf("bucket %s: %w", registry.Quote(string(key)), err)
		}
	}
	return nil
}

// span returns p[off:off+n] if it lies inside p.
func span(p []byte, off, n uint64) ([]byte, error) {
	if off > uint64(len(p)) || n > uint64(len(p))-off {
		return nil, fmt.Errorf("of %d bytes at offset %d is outside the %d-byte page", n, off, len(p))
	}
	return p[off : off+n], nil
}

// freelistIDs decodes a freelist page: count page ids after the header, or,
// when count is 0xFFFF, the real count in the first id slot.
func freelistIDs(p []byte) ([]uint64, error) {
	start, count := uint64(pageHeaderSize), uint64(ne.Uint16(p[10:]))
	if count == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			return nil, fmt.Errorf("no room for the count")
		}
		count = ne.Uint64(p[pageHeaderSize:])
		start += 8
	}
	if count > (uint64(len(p))-start)/8 {
		return nil, fmt.Errorf("%d ids do not fit", count)
	}
	ids := make([]uint64, count)
	for i := range ids {
		ids[i] = ne.Uint64(p[start+uint64(i)*8:])
	}
	return ids, nil
}
