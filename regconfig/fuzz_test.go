package regconfig_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/regconfig"
	"github.com/regchain/regchain/registry"
)

// mark is a secret the fuzz targets plant: it must never show.
const mark = "MARKs3cret"

// FuzzParse: the compact form never panics; errors wrap ErrInvalid, are
// bounded and escaped, and never show a password or token given in the
// input; what parses validates, and prints back (String) to a form that
// parses to the same. testdata/fuzz/FuzzParse holds the inputs that once
// leaked a secret or echoed input unbounded.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"etcd://10.0.0.1:2379,10.0.0.2:2379?namespace=/ms&username=app&ttl=15s&ca=/ca.pem&cert=/c.pem&key=/c.key",
		"consul://127.0.0.1:8500?token=T&dc=eu1&scheme=https",
		"zk://10.0.0.5:2281?root=/ms&user=app&password=P&ca=/ca.pem",
		"file:///var/lib/app/registry.db",
		"etcd://h:1|static:///etc/app/peers.json?poll=5s|snapshot:///var/lib/s.db?max_age=24h|chain:?name=app&read_policy=merge&failback_after=10s",
		"etcd://h:1?username=u&password_file=/run/pw|consul://h:2?token_file=/run/t",
		"?password=0://0",
		"etcd://h:1?pass%77ord=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Plant the mark as the value of every password and token
		// parameter, however spelt: an error must not show it.
		planted := plant(s)
		c, err := regconfig.Parse(planted)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("Parse error %v does not wrap ErrInvalid", err)
			}
			testutil.SafeMessage(t, "Parse", err.Error())
			if strings.Contains(err.Error(), mark) {
				t.Fatalf("Parse(%q) error shows a secret: %v", planted, err)
			}
			if strings.Contains(regconfig.Redact(planted), mark) {
				t.Fatalf("Redact(%q) shows a secret", planted)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse(%q) returned a config Validate refuses: %v", planted, err)
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if out := fmt.Sprintf(verb, c); strings.Contains(out, mark) {
				t.Fatalf("%s of a parsed config shows a secret: %s", verb, out)
			}
		}
		back, err := regconfig.Parse(c.String())
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", planted, c.String(), err)
		}
		if back.String() != c.String() {
			t.Fatalf("String does not round-trip:\n%q\n%q", c.String(), back.String())
		}
	})
}

// plant replaces the value of every parameter whose decoded key, folded,
// holds "password" or "token" (but names no file) with mark.
func plant(s string) string {
	parts := strings.Split(s, "&")
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = k[strings.LastIndexByte(k, '?')+1:]
		if d, err := url.QueryUnescape(k); err == nil {
			k = d
		}
		k = strings.ToLower(k)
		if (strings.Contains(k, "password") || strings.Contains(k, "token")) && !strings.Contains(k, "file") {
			parts[i] = p[:strings.IndexByte(p, '=')+1] + mark
		}
	}
	return strings.Join(parts, "&")
}

// FuzzDecodeConfig: the file form (JSON or YAML decoded into a Config, as
// Kratos' config does) never panics Validate; its errors wrap ErrInvalid
// and are bounded and escaped; no fmt verb prints a password or token.
func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte(appYAML), true)
	f.Add([]byte(`{"backends":[{"type":"etcd","endpoints":["https://app:pw@h:1"],"password":"x","username":"u"}]}`), false)
	f.Add([]byte(`{"backends":[{"type":"etcd","endpoints":["http://b:1"],"tls":{"enabled":true}}]}`), false)
	f.Add([]byte("backends:\n  - {type: consul, token: t, endpoints: [\"h:1\"]}\nstatic: {instances: [{id: a, name: \"\\e[2J\", endpoints: [\"grpc://h:1\"]}]}\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, isYAML bool) {
		var c regconfig.Config
		var err error
		if isYAML {
			err = yaml.Unmarshal(data, &c)
		} else {
			err = json.Unmarshal(data, &c)
		}
		if err != nil {
			return // the decoder's error, not ours
		}
		for i := range c.Backends {
			if c.Backends[i].Password != "" {
				c.Backends[i].Password = mark
			}
			if c.Backends[i].Token != "" {
				c.Backends[i].Token = mark
			}
		}
		if err := c.Validate(); err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("Validate error %v does not wrap ErrInvalid", err)
			}
			testutil.SafeMessage(t, "Validate", err.Error())
			if strings.Contains(err.Error(), mark) {
				t.Fatalf("Validate error shows a secret: %v", err)
			}
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d"} {
			if out := fmt.Sprintf(verb, c); strings.Contains(out, mark) {
				t.Fatalf("%s of a config shows a secret: %.300s", verb, out)
			}
		}
	})
}
