// Command kratos runs a Kratos gRPC + HTTP service that registers through
// regchain, and clients that find it through discovery:///greeter, with
// nothing installed: etcd runs in-process.
//
// The registry is a chain of one tier (etcd) with a bbolt snapshot as the
// last resort. The program stops etcd half way: calls keep succeeding, and a
// client created during the outage still finds the service, from the chain's
// view. It exits by itself.
//
//	go run ./examples/kratos
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	nethttp "net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-kratos/kratos/v2"
	"github.com/go-kratos/kratos/v2/log"
	"github.com/go-kratos/kratos/v2/transport/grpc"
	"github.com/go-kratos/kratos/v2/transport/http"
	ggrpc "google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/kratosplugin"
)

const service = "greeter"

func main() {
	// Kratos logs every server start and stop at INFO; keep its warnings.
	log.SetLogger(log.NewFilter(log.NewStdLogger(os.Stderr), log.FilterLevel(log.LevelWarn)))
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// run does the whole demonstration, writing what happens to w.
func run(w io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "regchain-kratos-example-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// A real etcd, in-process.
	srv, err := embedetcd.Start(filepath.Join(dir, "etcd"))
	if err != nil {
		return err
	}
	defer srv.Stop()
	fmt.Fprintf(w, "etcd listening on %s\n", srv.Endpoint())

	// The registry: etcd, then the snapshot file as the last resort.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	et, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint()}, TTL: 5 * time.Second, Timeout: time.Second, Logger: quiet})
	if err != nil {
		return err
	}
	defer et.Close()
	store, err := file.OpenStore(filepath.Join(dir, "snapshot.db"), file.Config{Logger: quiet})
	if err != nil {
		return err
	}
	defer store.Close()
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: et}}, chain.WithSnapshot(store), chain.WithLogger(quiet))
	if err != nil {
		return err
	}
	defer c.Close()
	// readme:begin kratos
	reg := kratosplugin.New(c) // any registry.Registry: a chain or one backend

	// The service: Kratos' gRPC server (with grpc-go's health service, which
	// Kratos registers on it) and an HTTP server with one route.
	gs := grpc.NewServer(grpc.Address("127.0.0.1:0"))
	hs := http.NewServer(http.Address("127.0.0.1:0"))
	hs.Route("/").GET("/hello", func(ctx http.Context) error {
		return ctx.JSON(nethttp.StatusOK, map[string]string{"message": "hello from " + service})
	})
	app := kratos.New(
		kratos.ID(service+"-1"),
		kratos.Name(service),
		kratos.Version("v1.0.0"),
		kratos.Metadata(map[string]string{"weight": "100"}),
		kratos.Server(gs, hs),
		kratos.Registrar(reg),
		// On SIGTERM (or Stop), before the servers stop: deregister from
		// every tier and wait until the registries' watches no longer show
		// the instance, so clients stop sending before the service does.
		kratos.BeforeStop(func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			start := time.Now()
			if err := c.Drain(ctx); err != nil {
				return err
			}
			fmt.Fprintf(w, "drained in %v: the registries that are up no longer show %s-1\n", time.Since(start).Round(time.Millisecond), service)
			return nil
		}),
	)
	// readme:end kratos
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run() }()
	defer func() {
		if stopErr := app.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
		if e := <-runErr; e != nil && err == nil {
			err = e
		}
	}()

	// Clients that know only the service's name.
	ctx := context.Background()
	// readme:begin kratos-client
	conn, err := grpc.DialInsecure(ctx, grpc.WithEndpoint("discovery:///"+service), grpc.WithDiscovery(reg),
		grpc.WithPrintDiscoveryDebugLog(false))
	// readme:end kratos-client
	if err != nil {
		return err
	}
	defer conn.Close()
	tr := &nethttp.Transport{}
	defer tr.CloseIdleConnections()
	hc, err := http.NewClient(ctx, http.WithEndpoint("discovery:///"+service), http.WithDiscovery(reg), http.WithTransport(tr))
	if err != nil {
		return err
	}
	defer hc.Close()

	if err := retry(func() error { return callGRPC(w, conn, "grpc") }); err != nil {
		return err
	}
	if err := retry(func() error { return callHTTP(w, hc, "http") }); err != nil {
		return err
	}

	list, err := reg.GetService(ctx, service)
	if err != nil {
		return err
	}
	for _, si := range list {
		fmt.Fprintf(w, "registered: %s %s weight=%s endpoints=%d\n", si.ID, si.Version, si.Metadata["weight"], len(si.Endpoints))
	}

	// An etcd outage: discovery keeps answering.
	srv.Stop()
	fmt.Fprintln(w, "etcd stopped")
	if err := callGRPC(w, conn, "grpc during the outage"); err != nil {
		return err
	}
	if err := callHTTP(w, hc, "http during the outage"); err != nil {
		return err
	}
	late, err := grpc.DialInsecure(ctx, grpc.WithEndpoint("discovery:///"+service), grpc.WithDiscovery(reg),
		grpc.WithPrintDiscoveryDebugLog(false))
	if err != nil {
		return err
	}
	defer late.Close()
	if err := retry(func() error { return callGRPC(w, late, "new grpc client during the outage") }); err != nil {
		return err
	}
	return nil
}

// retry calls f until it succeeds, for up to 10 s: a new client needs a
// moment to resolve the service.
func retry(f func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func callGRPC(w io.Writer, conn *ggrpc.ClientConn, what string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		return fmt.Errorf("%s: status %v", what, resp.GetStatus())
	}
	fmt.Fprintf(w, "%s: %v\n", what, resp.GetStatus())
	return nil
}

func callHTTP(w io.Writer, hc *http.Client, what string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var reply struct {
		Message string `json:"message"`
	}
	if err := hc.Invoke(ctx, nethttp.MethodGet, "/hello", nil, &reply); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if reply.Message == "" {
		return errors.New(what + ": empty reply")
	}
	fmt.Fprintf(w, "%s: %s\n", what, reply.Message)
	return nil
}
