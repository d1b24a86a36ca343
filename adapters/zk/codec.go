package zk

import (
	"fmt"
	"path"
	"strings"

	"github.com/regchain/regchain/registry"
)

// checkRoot returns nil if root can be the registry's root node: an absolute
// path in canonical form, not "/" (whose children include ZooKeeper's own
// /zookeeper) and not under /zookeeper, without control characters.
func checkRoot(root string) error {
	bad := root == "/" || !strings.HasPrefix(root, "/") || path.Clean(root) != root ||
		root == "/zookeeper" || strings.HasPrefix(root, "/zookeeper/")
	for i := 0; i < len(root) && !bad; i++ {
		bad = root[i] < 0x20 || root[i] == 0x7f
	}
	if bad {
		return fmt.Errorf("zookeeper: %w: root %s is not an absolute path like /microservices", registry.ErrInvalid, registry.Quote(root))
	}
	return nil
}

// servicePath is the persistent node whose children are the service's
// instances: <root>/<name>.
func (r *Registry) servicePath(name string) string { return r.root + "/" + name }

// instancePath is the ephemeral node of one instance: <root>/<name>/<id>, the
// layout of Kratos' contrib ZooKeeper registry.
func (r *Registry) instancePath(name, id string) string { return r.root + "/" + name + "/" + id }

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
