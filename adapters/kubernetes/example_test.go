package kubernetes_test

import (
	"context"
	"log"

	"github.com/regchain/regchain/adapters/kubernetes"
	"github.com/regchain/regchain/chain"
)

// A chain whose first tier is the cluster: inside a Pod the zero Config
// reads the EndpointSlices of the Pod's namespace with its service account.
// (Not run: it needs a cluster.)
func Example() {
	k8s, err := kubernetes.New(kubernetes.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer k8s.Close()
	c, err := chain.New([]chain.Tier{{Name: "kubernetes", Registry: k8s}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ins, err := c.GetService(context.Background(), "checkout")
	if err != nil {
		log.Fatal(err)
	}
	for _, in := range ins {
		log.Println(in.ID, in.Endpoints, in.Metadata["zone"])
	}
}
