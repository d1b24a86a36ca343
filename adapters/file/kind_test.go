package file

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regchain/regchain/registry"
)

// A registry file and a snapshot store file are refused in each other's
// place, read-only or not, and nothing is written to them.
func TestWrongKindOfFile(t *testing.T) {
	dir := t.TempDir()
	regPath, storePath := filepath.Join(dir, "registry.db"), filepath.Join(dir, "snapshot.db")
	r, err := Open(regPath, Config{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	s, err := OpenStore(storePath, Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, _ := os.ReadFile(regPath)

	for _, ro := range []bool{false, true} {
		_, err := OpenStore(regPath, Config{ReadOnly: ro})
		if !errors.Is(err, ErrWrongKind) || !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "registry (Open) file, not a snapshot store") {
			t.Errorf("OpenStore(registry file, ReadOnly=%v) = %v; want ErrWrongKind naming both kinds", ro, err)
		}
		_, err = Open(storePath, Config{ReadOnly: ro})
		if !errors.Is(err, ErrWrongKind) || !strings.Contains(err.Error(), "snapshot store (OpenStore) file, not a registry") {
			t.Errorf("Open(snapshot file, ReadOnly=%v) = %v; want ErrWrongKind naming both kinds", ro, err)
		}
	}
	if after, _ := os.ReadFile(regPath); string(after) != string(before) {
		t.Error("a refused open changed the file")
	}
	// Each still opens as what it is.
	r, err = Open(regPath, Config{})
	if err != nil {
		t.Fatalf("reopen registry: %v", err)
	}
	r.Close()
}

func TestEmptyFileReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, open := range map[string]func() error{
		"Open": func() error {
			r, err := Open(path, Config{ReadOnly: true})
			if err == nil {
				r.Close()
			}
			return err
		},
		"OpenStore": func() error {
			s, err := OpenStore(path, Config{ReadOnly: true})
			if err == nil {
				s.Close()
			}
			return err
		},
	} {
		err := open()
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "empty") {
			t.Errorf("%s(empty file, ReadOnly) = %v; want ErrCorrupt saying it is empty", name, err)
		}
	}
	// Read-write, an empty file is initialized as a new one.
	s, err := OpenStore(path, Config{})
	if err != nil {
		t.Fatalf("OpenStore(empty file) = %v; want a new store", err)
	}
	s.Close()
}
