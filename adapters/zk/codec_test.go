package zk

import (
	"errors"
	"testing"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

func TestDecodeNode(t *testing.T) {
	good := `{"id":"i1","name":"svc","version":"v1","metadata":{"a":"b"},"endpoints":["grpc://1.2.3.4:5"]}`
	tests := []struct {
		name, svc, id, data string
		ok                  bool
	}{
		{"valid", "svc", "i1", good, true},
		{"kratos without metadata", "svc", "i1", `{"id":"i1","name":"svc","version":"","metadata":null,"endpoints":["http://h:1"]}`, true},
		{"other service", "other", "i1", good, false},
		{"other id", "svc", "i2", good, false},
		{"empty", "svc", "i1", "", false},
		{"not an object", "svc", "i1", `"x"`, false},
		{"no endpoints", "svc", "i1", `{"id":"i1","name":"svc","endpoints":[]}`, false},
		{"truncated", "svc", "i1", good[:20], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := decodeNode(tt.svc, tt.id, []byte(tt.data))
			if tt.ok && (err != nil || in == nil) {
				t.Fatalf("decodeNode = %v, %v; want an instance", in, err)
			}
			if !tt.ok && !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("decodeNode = %v, %v; want ErrInvalid", in, err)
			}
		})
	}
}

// FuzzDecodeNode: arbitrary node data never panics, and whatever decodes is
// a valid instance of the node's own service and ID.
func FuzzDecodeNode(f *testing.F) {
	f.Add("svc", "i1", []byte(`{"id":"i1","name":"svc","version":"v1","metadata":{"a":"b"},"endpoints":["grpc://1.2.3.4:5"]}`))
	f.Add("svc", "i1", []byte(`{"id":"i1","name":"svc","endpoints":["grpc://[::1]:5"],"metadata":{"":"x"}}`))
	f.Add("svc", "i1", []byte(`{"id":1}`))
	f.Add("a", "b", []byte(`null`))
	f.Add("a", "b", []byte{0xff, 0xfe})
	f.Fuzz(func(t *testing.T, svc, id string, data []byte) {
		in, err := decodeNode(svc, id, data)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			testutil.SafeMessage(t, "decodeNode", err.Error())
			return
		}
		if in.Name != svc || in.ID != id {
			t.Fatalf("decoded %s from node %s/%s", in, svc, id)
		}
		if err := registry.Validate(in); err != nil {
			t.Fatalf("decoded an invalid instance: %v", err)
		}
	})
}
