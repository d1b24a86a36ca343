package regconfig_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kconfig "github.com/go-kratos/kratos/v2/config"
	kfile "github.com/go-kratos/kratos/v2/config/file"
	"gopkg.in/yaml.v3"

	"github.com/regchain/regchain/regconfig"
	"github.com/regchain/regchain/registry"
)

const appYAML = `
registry:
  backends:
    - type: etcd
      endpoints: [10.0.0.1:2379]
      namespace: /ms
      username: app
      password_env: APP_ETCD_PASSWORD
      ttl: 10s
      tls: {ca_file: /etc/ssl/ca.pem}
    - type: consul
      name: dc2
      endpoints: [127.0.0.1:8500]
      read_only: true
  snapshot: {path: /var/lib/app/snap.db, max_age: 24h}
  static:
    instances:
      - {id: s1, name: greeter, endpoints: ["grpc://10.9.0.1:9000"]}
  chain: {name: app, failback_after: 3s, guard: {confirmations: 2}}
`

func checkDecoded(t *testing.T, c regconfig.Config) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if len(c.Backends) != 2 || c.Backends[0].TTL.D() != 10*time.Second || c.Backends[0].TLS.CAFile != "/etc/ssl/ca.pem" ||
		c.Backends[1].Name != "dc2" || !c.Backends[1].ReadOnly {
		t.Errorf("backends = %+v", c.Backends)
	}
	if c.Snapshot.MaxAge.D() != 24*time.Hour || c.Chain.FailbackAfter.D() != 3*time.Second || c.Chain.Guard.Confirmations != 2 {
		t.Errorf("snapshot %+v, chain %+v", c.Snapshot, c.Chain)
	}
	if len(c.Static.Instances) != 1 || c.Static.Instances[0].Endpoints[0] != "grpc://10.9.0.1:9000" {
		t.Errorf("static = %+v", c.Static)
	}
	want := "etcd://10.0.0.1:2379?ca=/etc/ssl/ca.pem&namespace=/ms&ttl=10s&username=app|consul://127.0.0.1:8500?name=dc2&read_only=true|snapshot:///var/lib/app/snap.db?max_age=24h0m0s|chain:?failback_after=3s&guard_confirmations=2&name=app"
	if got := c.String(); got != want {
		t.Errorf("String() = %q\nwant %q", got, want)
	}
}

func TestDecodeYAML(t *testing.T) {
	var v struct {
		Registry regconfig.Config `yaml:"registry"`
	}
	if err := yaml.Unmarshal([]byte(appYAML), &v); err != nil {
		t.Fatal(err)
	}
	checkDecoded(t, v.Registry)
}

func TestDecodeKratosConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.yaml")
	if err := os.WriteFile(path, []byte(appYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	kc := kconfig.New(kconfig.WithSource(kfile.NewSource(path)))
	defer kc.Close()
	if err := kc.Load(); err != nil {
		t.Fatal(err)
	}
	var c regconfig.Config
	if err := kc.Value("registry").Scan(&c); err != nil {
		t.Fatalf("Kratos Scan: %v", err)
	}
	checkDecoded(t, c)
}

func TestDecodeJSONRoundTrip(t *testing.T) {
	var v struct {
		Registry regconfig.Config `yaml:"registry"`
	}
	if err := yaml.Unmarshal([]byte(appYAML), &v); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(v.Registry)
	if err != nil {
		t.Fatal(err)
	}
	var back regconfig.Config
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	checkDecoded(t, back)
	if strings.Contains(string(data), `"chain":{}`) || strings.Contains(string(data), `"password"`) {
		t.Errorf("JSON carries empty or unset fields: %s", data)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		json, field, problem string
	}{
		{`{"backends":[{"type":"etcd","endpoints":["h:1"]},{"type":"etcdd"}]}`, "backends[1].type", `"etcdd": want etcd, consul, zk or file`},
		{`{"backends":[{"type":"file"}]}`, "backends[0].path", "missing"},
		{`{"backends":[{"type":"consul","namespace":"/x"}]}`, "backends[0].namespace", "not used by consul"},
		{`{"backends":[{"type":"file","path":"x.db","tls":{"enabled":true}}]}`, "backends[0].tls", "not used by file"},
		{`{"backends":[{"type":"etcd","password":"p"}]}`, "backends[0].password", "without a username"},
		{`{"backends":[{"type":"etcd","name":"snapshot"}]}`, "backends[0].name", "reserved"},
		{`{"backends":[{"type":"etcd"}],"static":{"instances":[{"id":"a","name":"g"}]}}`, "", "static.instances[0]"},
		{`{"backends":[{"type":"etcd"}],"chain":{"failure_threshold":-1}}`, "chain.failure_threshold", "negative"},
		// TLS with an http:// endpoint: the etcd client would talk plaintext.
		{`{"backends":[{"type":"etcd","endpoints":["https://a:1","http://b:1"],"tls":{"ca_file":"/ca.pem"}}]}`, "backends[0].endpoints[1]", "http:// with TLS settings"},
		{`{"backends":[{"type":"etcd","endpoints":["HTTP://b:1"],"tls":{"enabled":true}}]}`, "backends[0].endpoints[0]", "http:// with TLS settings"},
		// Credentials in an endpoint: refused, and not shown.
		{`{"backends":[{"type":"etcd","endpoints":["https://app:s3cret@b:1"]}]}`, "backends[0].endpoints[0]", `"https://REDACTED@b:1": credentials go in username and password`},
	}
	for _, c := range cases {
		var cfg regconfig.Config
		if err := json.Unmarshal([]byte(c.json), &cfg); err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		err := cfg.Validate()
		if !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", c.json, err)
			continue
		}
		var fe *regconfig.FieldError
		if c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field) {
			t.Errorf("%s: Validate = %v, want field %s", c.json, err, c.field)
		}
		if !strings.Contains(err.Error(), c.problem) {
			t.Errorf("%s: Validate = %q, want it to contain %q", c.json, err, c.problem)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: Validate = %q shows the secret", c.json, err)
		}
	}
	var d regconfig.Duration
	err := json.Unmarshal([]byte(`{"ttl":"10"}`), &struct {
		TTL *regconfig.Duration `json:"ttl"`
	}{&d})
	if err == nil || !strings.Contains(err.Error(), "not a duration") {
		t.Errorf("ttl \"10\": %v, want a message saying it is not a duration", err)
	}
}
