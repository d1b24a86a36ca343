package registry_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"unsafe"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// decodeInstances builds instances from fuzz bytes: each byte picks the
// shape of the next instance (nil, nil or empty maps and slices, sizes).
func decodeInstances(data []byte) []*registry.Instance {
	if len(data) == 0 {
		return nil
	}
	out := make([]*registry.Instance, 0, len(data))
	for i, b := range data {
		if b%11 == 0 {
			out = append(out, nil)
			continue
		}
		in := &registry.Instance{ID: fmt.Sprintf("i%d", i), Name: "svc", Version: fmt.Sprint(b % 3)}
		switch nmd := int(b>>2) % 4; {
		case b&1 == 0:
			// nil Metadata
		case nmd == 0:
			in.Metadata = map[string]string{}
		default:
			in.Metadata = make(map[string]string, nmd)
			for k := range nmd {
				in.Metadata[fmt.Sprint("k", k)] = fmt.Sprint("v", b, k)
			}
		}
		switch neps := int(b>>4) % 4; {
		case b&2 == 0:
			// nil Endpoints
		default:
			in.Endpoints = make([]string, 0, neps)
			for k := range neps {
				in.Endpoints = append(in.Endpoints, fmt.Sprintf("grpc://10.0.%d.%d:%d", i, b, k))
			}
		}
		out = append(out, in)
	}
	return out
}

// checkClone fails unless c is an independent deep copy of s.
func checkClone(t *testing.T, s, c []*registry.Instance) {
	t.Helper()
	if (s == nil) != (c == nil) || len(s) != len(c) {
		t.Fatalf("CloneInstances: got len %d (nil %v), want len %d (nil %v)", len(c), c == nil, len(s), s == nil)
	}
	if len(s) > 0 && &s[0] == &c[0] {
		t.Fatal("the pointer slice is shared")
	}
	for i := range s {
		a, b := s[i], c[i]
		if a == nil || b == nil {
			if a != b {
				t.Fatalf("[%d]: got %v, want %v", i, b, a)
			}
			continue
		}
		if a == b {
			t.Fatalf("[%d]: the Instance is shared", i)
		}
		if !b.Equal(a) || !slices.Equal(a.Endpoints, b.Endpoints) {
			t.Fatalf("[%d]: got %+v, want %+v", i, b, a)
		}
		if (a.Metadata == nil) != (b.Metadata == nil) || (a.Endpoints == nil) != (b.Endpoints == nil) {
			t.Fatalf("[%d]: nil-ness changed: got %+v, want %+v", i, b, a)
		}
		if a.Metadata != nil && reflect.ValueOf(a.Metadata).UnsafePointer() == reflect.ValueOf(b.Metadata).UnsafePointer() {
			t.Fatalf("[%d]: the Metadata map is shared", i)
		}
		if len(a.Endpoints) > 0 && unsafe.SliceData(a.Endpoints) == unsafe.SliceData(b.Endpoints) {
			t.Fatalf("[%d]: the Endpoints array is shared", i)
		}
		if cap(b.Endpoints) != len(b.Endpoints) {
			t.Fatalf("[%d]: Endpoints capacity %d > length %d: an append would overwrite a neighbour", i, cap(b.Endpoints), len(b.Endpoints))
		}
	}
	// Writing through the copy leaves the original alone.
	want := make([]*registry.Instance, len(s))
	for i, in := range s {
		want[i] = in.Clone()
	}
	for _, in := range c {
		if in == nil {
			continue
		}
		in.ID += "!"
		if in.Metadata != nil {
			in.Metadata["written"] = "x"
		}
		for k := range in.Endpoints {
			in.Endpoints[k] = "http://written:1"
		}
		in.Endpoints = append(in.Endpoints, "http://appended:1")
	}
	for i := range s {
		if !s[i].Equal(want[i]) {
			t.Fatalf("[%d]: writing the copy changed the original: %+v, want %+v", i, s[i], want[i])
		}
	}
}

func TestCloneInstances(t *testing.T) {
	full := sample()
	tests := []struct {
		name string
		in   []*registry.Instance
	}{
		{"nil", nil},
		{"empty", []*registry.Instance{}},
		{"nil entries only", []*registry.Instance{nil, nil}},
		{"one", []*registry.Instance{full}},
		{"empty maps and slices", []*registry.Instance{{ID: "a", Name: "s", Metadata: map[string]string{}, Endpoints: []string{}}}},
		{"nil maps and slices", []*registry.Instance{{ID: "a", Name: "s"}}},
		{"mixed", []*registry.Instance{full, nil, {ID: "b", Name: "s", Endpoints: []string{"http://h:1"}}, {ID: "c", Name: "s", Metadata: map[string]string{"k": "v"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkClone(t, tt.in, registry.CloneInstances(tt.in))
		})
	}
}

func FuzzCloneInstances(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{1, 2, 3, 0x33, 0xff, 11, 0x7f})
	f.Add([]byte("a longer seed with many instances of every shape"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := decodeInstances(data)
		checkClone(t, s, registry.CloneInstances(s))
	})
}

// benchInstances returns n instances of the shape the plugins' benchmarks
// use: two metadata keys, two endpoints.
func benchInstances(n int) []*registry.Instance {
	out := make([]*registry.Instance, n)
	for i := range out {
		out[i] = &registry.Instance{
			ID: fmt.Sprintf("i%05d", i), Name: "svc", Version: "v1",
			Metadata:  map[string]string{"zone": "z1", "weight": "10"},
			Endpoints: []string{fmt.Sprintf("grpc://10.0.0.%d:9000", i), fmt.Sprintf("http://10.0.0.%d:8000", i)},
		}
	}
	return out
}

// BenchmarkCloneInstances compares CloneInstances with the obvious copy,
// Instance.Clone per entry.
func BenchmarkCloneInstances(b *testing.B) {
	for _, n := range []int{10, 100} {
		s := benchInstances(n)
		b.Run(fmt.Sprintf("CloneInstances/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			start := testutil.CPUTime()
			for b.Loop() {
				_ = registry.CloneInstances(s)
			}
			testutil.ReportCPU(b, start)
		})
		b.Run(fmt.Sprintf("PerInstanceClone/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			start := testutil.CPUTime()
			for b.Loop() {
				out := make([]*registry.Instance, len(s))
				for i, in := range s {
					out[i] = in.Clone()
				}
				_ = out
			}
			testutil.ReportCPU(b, start)
		})
	}
}
