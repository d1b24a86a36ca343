package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/registry"
)

// regctl reads a registry file that adapters/file wrote: list, get, and a
// service that is not there (exit status 1, the message on stderr).
func Example_fileRegistry() {
	dir, err := os.MkdirTemp("", "regctl-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "registry.db")
	reg, err := file.Open(path, file.Config{})
	if err != nil {
		log.Fatal(err)
	}
	err = reg.Register(context.Background(), &registry.Instance{
		ID: "i-1", Name: "greeter", Version: "v1.0.0",
		Endpoints: []string{"grpc://10.0.0.1:9000"},
		Metadata:  map[string]string{"zone": "eu-1"},
	})
	reg.Close() // regctl cannot open a file another Open holds
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	url := "file://" + path
	run(ctx, []string{"-registry", url, "list"}, os.Stdout, os.Stderr)
	run(ctx, []string{"-registry", url, "get", "greeter"}, os.Stdout, os.Stderr)
	fmt.Println("exit status:", run(ctx, []string{"-registry", url, "get", "billing"}, os.Stdout, io.Discard))
	// Output:
	// greeter
	// ID   VERSION  ENDPOINTS             METADATA
	// i-1  v1.0.0   grpc://10.0.0.1:9000  zone=eu-1
	// exit status: 1
}
