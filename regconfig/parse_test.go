package regconfig_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/regchain/regchain/regconfig"
	"github.com/regchain/regchain/registry"
)

func TestParse(t *testing.T) {
	d := func(s string) regconfig.Duration {
		v, _ := time.ParseDuration(s)
		return regconfig.Duration(v)
	}
	cases := []struct {
		in   string
		want regconfig.Config
		str  string // String() of the result; "" means in
	}{
		{
			in:   "etcd://10.0.0.1:2379,10.0.0.2:2379?namespace=/ms&username=app&password=pw&ttl=10s&ca=/ca.pem&cert=/c.pem&key=/c.key",
			want: regconfig.Config{Backends: []regconfig.Backend{{Type: "etcd", Endpoints: []string{"10.0.0.1:2379", "10.0.0.2:2379"}, Namespace: "/ms", Username: "app", Password: "pw", TTL: d("10s"), TLS: regconfig.TLS{CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/c.key"}}}},
			str:  "etcd://10.0.0.1:2379,10.0.0.2:2379?ca=/ca.pem&cert=/c.pem&key=/c.key&namespace=/ms&ttl=10s&username=app",
		},
		{
			in: "consul://127.0.0.1:8500?token=T&dc=eu1&scheme=https | zookeeper://h:2181?root=/r&user=u&password=p&read_only=true | file:///var/lib/r.db",
			want: regconfig.Config{Backends: []regconfig.Backend{
				{Type: "consul", Endpoints: []string{"127.0.0.1:8500"}, Token: "T", Datacenter: "eu1", TLS: regconfig.TLS{Enabled: true}},
				{Type: "zk", Endpoints: []string{"h:2181"}, Namespace: "/r", Username: "u", Password: "p", ReadOnly: true},
				{Type: "file", Path: "/var/lib/r.db"},
			}},
			str: "consul://127.0.0.1:8500?dc=eu1&tls=true|zk://h:2181?read_only=true&root=/r&user=u|file:///var/lib/r.db",
		},
		{
			in: "etcd://h:2379|static:///etc/peers.json?poll=5s|snapshot:///var/s.db?max_age=24h|chain:?name=app&read_policy=merge&failback_after=3s&guard=false&strict_register=true",
			want: regconfig.Config{
				Backends: []regconfig.Backend{{Type: "etcd", Endpoints: []string{"h:2379"}}},
				Static:   regconfig.Static{File: "/etc/peers.json", PollInterval: d("5s")},
				Snapshot: regconfig.Snapshot{Path: "/var/s.db", MaxAge: d("24h")},
				Chain:    regconfig.ChainConfig{Name: "app", ReadPolicy: "merge", FailbackAfter: d("3s"), StrictRegister: true, Guard: regconfig.Guard{Disabled: true}},
			},
			str: "etcd://h:2379|static:///etc/peers.json?poll=5s|snapshot:///var/s.db?max_age=24h0m0s|chain:?failback_after=3s&guard=false&name=app&read_policy=merge&strict_register=true",
		},
		{in: "static:///etc/peers.json", want: regconfig.Config{Static: regconfig.Static{File: "/etc/peers.json"}}},
	}
	for _, c := range cases {
		got, err := regconfig.Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", c.in, got, c.want)
		}
		str := c.str
		if str == "" {
			str = c.in
		}
		if s := got.String(); s != str {
			t.Errorf("String() = %q, want %q", s, str)
		}
		if strings.Contains(got.String(), "pw") || strings.Contains(got.String(), "=T") {
			t.Errorf("String() %q shows a secret", got.String())
		}
		// The string form parses back to the same config, secrets aside.
		back, err := regconfig.Parse(got.String())
		if err != nil {
			t.Errorf("Parse(String()) = %v", err)
		} else if back.String() != got.String() {
			t.Errorf("round trip: %q, want %q", back.String(), got.String())
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "empty element"},
		{"etcd://h:1||consul://h:2", "empty element"},
		{"127.0.0.1:2379", "want SCHEME://ADDRESS"},
		{"redis://h:6379", `unknown scheme "redis"`},
		{"etcd://h:1?namspace=/x", `unknown parameter "namspace" for etcd`},
		{"etcd://h:1?namespace=/a&namespace=/b", `parameter "namespace" given 2 times`},
		{"etcd://h:1,,h:2", "empty address in the list"},
		{"etcd://h:1/ns", "unexpected path after the address"},
		{"etcd://user:s3cret@h:1", "credentials go in parameters"},
		{"consul://a:8500,b:8500", "consul takes one agent address, not 2"},
		{"consul://a:8500?scheme=ftp", `scheme="ftp": want http or https`},
		{"consul://a:8500?scheme=http&tls=true", "scheme=http with TLS parameters"},
		{"consul://a:8500?scheme=http&ca=/ca.pem", "scheme=http with TLS parameters"},
		{"zk://h:2181?password=x", "password without a user name"},
		{"etcd://h:1?ttl=ten", `ttl="ten": "ten" is not a duration`},
		{"etcd://h:1?tls=yes", `tls="yes": want true or false`},
		{"etcd://h:x", `backends[0].endpoints[0]: "h:x": the port is not a number`},
		{"etcd://h:1?namespace=ms", `backends[0].namespace`},
		{"etcd://h:1?cert=/c.pem", "cert_file and key_file go together"},
		{"file://", "no file path"},
		{"static:", "want static:///path/to/file"},
		{"static://", "no file path"},
		{"static:///a|static:///b", "a second static element"},
		{"etcd://h:1|chain:?read_policy=random", `chain.read_policy: "random"`},
		{"etcd://h:1|chain:?guard_max_drop_share=2", "chain.guard.max_drop_share"},
		{"etcd://h:1?name=a|consul://h:2?name=a", `backends[1].name: "a" is also the name of backends[0]`},
		{"snapshot:///s.db", "backends: no backend and no static tier"},
	}
	for _, c := range cases {
		_, err := regconfig.Parse(c.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want %q", c.in, c.want)
			continue
		}
		if !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", c.in, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %q, want it to contain %q", c.in, err, c.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Parse(%q) error shows the secret: %q", c.in, err)
		}
	}
}

func TestTierNames(t *testing.T) {
	c, err := regconfig.Parse("etcd://a:1|etcd://b:1|consul://c:1|etcd://d:1?name=old")
	if err != nil {
		t.Fatal(err)
	}
	r, err := regconfig.Open(c, regconfig.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var names []string
	for _, tier := range r.(*regconfig.Chain).Status().Tiers {
		names = append(names, tier.Name)
	}
	if want := []string{"etcd", "etcd-2", "consul", "old"}; !reflect.DeepEqual(names, want) {
		t.Errorf("tier names %v, want %v", names, want)
	}
}
