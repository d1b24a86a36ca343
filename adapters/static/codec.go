package static

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/regchain/regchain/internal/safefile"
	"github.com/regchain/regchain/registry"
)

// MaxFileSize is the largest Config.File accepted: 64 MiB, some 300,000
// instances.
const MaxFileSize = 64 << 20

// fileState identifies a version of the file without reading it.
type fileState struct {
	info os.FileInfo
}

func (s fileState) same(o os.FileInfo) bool {
	return s.info != nil && o != nil && os.SameFile(s.info, o) &&
		s.info.Size() == o.Size() && s.info.ModTime().Equal(o.ModTime())
}

// readFile reads and checks the instance list in path. A FIFO, a device
// or a directory is refused at once, a file larger than MaxFileSize before
// it is read; decoding errors are quoted, bounded (registry.Quote).
func readFile(path string) ([]*registry.Instance, os.FileInfo, error) {
	f, info, err := safefile.Open(path, MaxFileSize)
	switch {
	case errors.Is(err, safefile.ErrNotRegular), errors.Is(err, safefile.ErrTooLarge):
		return nil, nil, fmt.Errorf("static: %w: %w", registry.ErrInvalid, err)
	case err != nil:
		return nil, nil, fmt.Errorf("static: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(io.LimitReader(f, MaxFileSize))
	dec.DisallowUnknownFields()
	var ins []*registry.Instance
	if err := dec.Decode(&ins); err != nil {
		return nil, nil, fmt.Errorf("static: %s: %w: want a JSON array of instances: %s", path, registry.ErrInvalid, registry.Quote(err.Error()))
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("static: %s: %w: data after the JSON array", path, registry.ErrInvalid)
	}
	if err := check(ins, path); err != nil {
		return nil, nil, err
	}
	return ins, info, nil
}

// check validates every instance; where says where they come from.
func check(ins []*registry.Instance, where string) error {
	for i, in := range ins {
		if in == nil {
			return fmt.Errorf("static: %s: instance %d: %w: null", where, i, registry.ErrInvalid)
		}
		if err := registry.Validate(in); err != nil {
			return fmt.Errorf("static: %s: instance %d (%s): %w", where, i, in, err)
		}
	}
	return nil
}

// index groups instances by service, later ones replacing earlier ones of
// the same Name and ID, each service's list sorted by ID.
func index(lists ...[]*registry.Instance) map[string][]*registry.Instance {
	byKey := make(map[string]*registry.Instance)
	for _, l := range lists {
		for _, in := range l {
			byKey[in.Key()] = in.Clone()
		}
	}
	out := make(map[string][]*registry.Instance)
	for _, in := range byKey {
		out[in.Name] = append(out[in.Name], in)
	}
	for _, s := range out {
		registry.SortInstances(s)
	}
	return out
}
