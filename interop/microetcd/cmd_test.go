package microetcd

import (
	"testing"

	"github.com/urfave/cli/v2"
	mreg "go-micro.dev/v4/registry"
	"go-micro.dev/v4/util/cmd"

	"github.com/regchain/regchain/microplugin"
	"github.com/regchain/regchain/microplugin/etcdchain"
)

// etcdchain.NewRegistry in go-micro's command-line registry table:
// "--registry=regchain --registry_address=..." builds it, and go-micro's
// Init with the address after construction reaches the chain, which then
// shares the etcd with a node still on the plugin.
func TestCommandLineTable(t *testing.T) {
	srv := shared.Server(t)
	cmd.DefaultRegistries[microplugin.Name] = etcdchain.NewRegistry
	t.Cleanup(func() { delete(cmd.DefaultRegistries, microplugin.Name) })
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the default snapshot path
	var reg mreg.Registry = placeholder{}
	c := cmd.NewCmd(cmd.Registry(&reg)) // its table is cmd.DefaultRegistries
	app := c.App()
	app.Action = func(*cli.Context) error { return nil }
	if err := app.Run([]string{"svc", "--registry", microplugin.Name, "--registry_address", srv.Endpoint()}); err != nil {
		t.Fatalf("command line: %v", err)
	}
	p, ok := reg.(*microplugin.Registry)
	if !ok {
		t.Fatalf("registry is %T, want *microplugin.Registry", reg)
	}
	defer p.Close()
	if got := p.Options().Addrs; len(got) != 1 || got[0] != srv.Endpoint() {
		t.Errorf("Addrs = %v", got)
	}
	name := unique("cmd")
	if err := reg.Register(service(name, name+"-1", "10.0.0.9:1")); err != nil {
		t.Fatal(err)
	}
	waitNodes(t, pluginRegistry(t, srv.Endpoint()), "plugin", name, name+"-1")
}

// placeholder is the registry before the command line picks one.
type placeholder struct{ mreg.Registry }

func (placeholder) String() string { return "none" }
