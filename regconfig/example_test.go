package regconfig_test

import (
	"fmt"

	"github.com/regchain/regchain/regconfig"
)

func ExampleParse() {
	// readme:begin regconfig
	c, err := regconfig.Parse("etcd://10.0.0.1:2379?username=app&password=secret&ttl=10s" +
		"|static:///etc/app/peers.json|snapshot:///var/lib/app/snap.db|chain:?name=app")
	// readme:end regconfig
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Backends[0].Endpoints, c.Backends[0].TTL.D(), c.Static.File, c.Snapshot.Path)
	fmt.Println(c) // secrets left out
	// Output:
	// [10.0.0.1:2379] 10s /etc/app/peers.json /var/lib/app/snap.db
	// etcd://10.0.0.1:2379?ttl=10s&username=app|static:///etc/app/peers.json|snapshot:///var/lib/app/snap.db|chain:?name=app
}

func ExampleConfig_Validate() {
	c := regconfig.Config{Backends: []regconfig.Backend{{Type: "etcd", Endpoints: []string{"10.0.0.1"}}}}
	fmt.Println(c.Validate())
	// Output: regconfig: backends[0].endpoints[0]: "10.0.0.1": want host:port
}
