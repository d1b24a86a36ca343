package static_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/regchain/regchain/adapters/static"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// FuzzFile: whatever the static file holds, New never panics; it fails
// with ErrInvalid and a bounded, escaped message, or serves only valid
// instances, each under its own service.
func FuzzFile(f *testing.F) {
	f.Add([]byte(`[{"id":"a","name":"greeter","version":"v1","metadata":{"k":"v"},"endpoints":["grpc://10.0.0.1:9000"]}]`))
	f.Add([]byte(`[{"id":"a","name":"greeter","endpoints":["grpc://h:1"]},{"id":"a","name":"greeter","endpoints":["grpc://h:2"]}]`))
	f.Add([]byte(`[{"\u001b]0;x\u0007":1}]`))
	f.Add([]byte(`[{"id":1}]`))
	f.Add([]byte(`[] []`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "peers.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := static.New(static.Config{File: path, Logger: quiet()})
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("New: error %v does not wrap ErrInvalid", err)
			}
			testutil.SafeMessage(t, "New", err.Error())
			return
		}
		defer r.Close()
		ctx := context.Background()
		names, err := r.ListServices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			ins, err := r.GetService(ctx, name)
			if err != nil {
				t.Fatalf("GetService(%s) of a listed service: %v", name, err)
			}
			for _, in := range ins {
				if in.Name != name || registry.Validate(in) != nil {
					t.Fatalf("served %s under %s: %v", in, name, registry.Validate(in))
				}
			}
		}
	})
}
