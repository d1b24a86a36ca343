package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/regchain/regchain/admin"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry/registrytest"
)

// Mount the handler on the admin mux, the way net/http/pprof is mounted,
// and ask it whether the process is ready.
func Example() {
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: registrytest.NewMemoryNamed("etcd")}}, chain.WithLogger(quiet()))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_ = c.Register(context.Background(), inst("checkout", "web-1", 8080))

	// readme:begin admin
	mux := http.NewServeMux()
	mux.Handle("/admin/", admin.New(c, admin.Config{
		Rules: admin.Rules{Registrations: true}, // ready once checkout/web-1 is held by a tier
	}))
	// readme:end admin

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost:9901/admin/readyz", nil))
	fmt.Println(rec.Code)
	fmt.Print(rec.Body)
	// Output:
	// 200
	// {
	//   "ready": true,
	//   "level": "L0"
	// }
}
