package microetcd

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/regchain/regchain/embedetcd/etcdtest"
)

var shared etcdtest.Shared

func TestMain(m *testing.M) {
	etcdtest.VerifyMain(m, &shared,
		// The plugin imports go-micro's command package, which starts
		// goroutines at import time (config loader, caches).
		goleak.IgnoreCurrent(),
		// The plugin's etcd client is never closed: the plugin has no Close.
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/client/v3.(*watchGrpcStream).run"),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("google.golang.org/grpc.(*addrConn).resetTransportAndUnlock"),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/transport.(*http2Client).keepalive"),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/transport.(*controlBuffer).get"),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/transport.(*http2Client).reader"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
