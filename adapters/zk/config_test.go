package zk

import (
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"
)

// TestConfigDeprecatedNames: the former field names still configure the
// Registry, under their new names.
func TestConfigDeprecatedNames(t *testing.T) {
	conn := new(gozk.Conn)
	old := Config{Conn: conn, Root: "/old", User: "u", Password: "p", RequestTimeout: 3 * time.Second, MaxRetryDelay: 2 * time.Second}
	got, err := old.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.Client != conn || got.Namespace != "/old" || got.Username != "u" || got.Timeout != 3*time.Second || got.MaxBackoff != 2*time.Second {
		t.Errorf("withDefaults of the former names = Client %p, Namespace %q, Username %q, Timeout %v, MaxBackoff %v; want %p, /old, u, 3s, 2s",
			got.Client, got.Namespace, got.Username, got.Timeout, got.MaxBackoff, conn)
	}
	if got.Conn != nil || got.Root != "" || got.User != "" || got.RequestTimeout != 0 || got.MaxRetryDelay != 0 {
		t.Errorf("withDefaults left former names set: %+v", got)
	}
	same := Config{Root: "/x", Namespace: "/x"}
	if got, err := same.withDefaults(); err != nil || got.Namespace != "/x" {
		t.Errorf("Root and Namespace both /x: %q, %v; want /x", got.Namespace, err)
	}
}
