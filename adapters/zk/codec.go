package zk

import (
	"fmt"
	"strings"

	"github.com/regchain/regchain/registry"
)

// layout is the node layout under the registry's root (the Namespace):
// <root>/<name>/<id>. The root is the string itself.
type layout string

// servicePath is the persistent node whose children are the service's
// instances: <root>/<name>.
func (l layout) servicePath(name string) string { return string(l) + "/" + name }

// instancePath is the ephemeral node of one instance: <root>/<name>/<id>, the
// layout of Kratos' contrib ZooKeeper registry.
func (l layout) instancePath(name, id string) string { return string(l) + "/" + name + "/" + id }

// decodeNode decodes the data of node <root>/<service>/<id>. Records that do
// not decode, do not validate or name another service or ID than their path
// return an error wrapping registry.ErrInvalid; it never panics.
func decodeNode(service, id string, data []byte) (*registry.Instance, error) {
	in, err := registry.Unmarshal(data)
	if err != nil {
		return nil, err
	}
	if in.Name != service || in.ID != id {
		return nil, fmt.Errorf("%w: record for %s names %s", registry.ErrInvalid, registry.Quote(service+"/"+id), in.Key())
	}
	return in, nil
}

// split splits a path under the root into service and instance ID
// ("", "" for the root itself); ok is false for any other path.
func (l layout) split(path string) (svc, id string, ok bool) {
	if path == string(l) {
		return "", "", true
	}
	rest, found := strings.CutPrefix(path, string(l)+"/")
	if !found || rest == "" {
		return "", "", false
	}
	svc, id, _ = strings.Cut(rest, "/")
	if strings.Contains(id, "/") {
		return "", "", false
	}
	return svc, id, true
}
