package main

import (
	"slices"
	"strings"
	"testing"
)

// Bad command lines exit 2 with a message on stderr and nothing on stdout,
// before any registry is contacted (the default etcd address has no server
// in these tests).
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{nil, "no command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"-nosuchflag", "list"}, "flag provided but not defined: -nosuchflag"},
		{[]string{"list", "extra"}, "list takes no arguments"},
		{[]string{"get"}, "get takes one service name, got 0"},
		{[]string{"get", "a", "b"}, "get takes one service name, got 2"},
		{[]string{"watch", "a", "b"}, "watch takes at most one service name"},
		{[]string{"ping", "x"}, "ping takes no arguments"},
		{[]string{"-json", "ping"}, "-json does not apply to ping"},
		{[]string{"-count", "2", "get", "greeter"}, "-count applies to watch only"},
		{[]string{"-count", "-1", "watch"}, "-count must not be negative"},
		{[]string{"-timeout", "0s", "list"}, "-timeout must be positive"},
		{[]string{"-timeout", "soon", "list"}, `invalid value "soon" for flag -timeout`},
		{[]string{"snapshot"}, "snapshot needs a subcommand"},
		{[]string{"snapshot", "restore", "x.db"}, `unknown snapshot subcommand "restore"`},
		{[]string{"snapshot", "dump"}, "snapshot dump takes one file, got 0"},
		{[]string{"snapshot", "inspect", "a.db", "b.db"}, "snapshot inspect takes one file, got 2"},
		{[]string{"-registry", "127.0.0.1:2379", "list"}, "want SCHEME://ADDRESS"},
		{[]string{"-registry", "redis://127.0.0.1:6379", "list"}, `unknown scheme "redis": want etcd, consul, zk or file`},
		{[]string{"-registry", "etcd://h:1?namspace=/x", "list"}, `unknown parameter "namspace" for etcd (want ca, cert, insecure_skip_verify, key, name, namespace, password, password_file, read_only, server_name, timeout, tls, ttl, username)`},
		{[]string{"-registry", "etcd://h:1?namespace=/a&namespace=/b", "list"}, `parameter "namespace" given 2 times`},
		{[]string{"-registry", "etcd://h:1,,h:2", "list"}, "empty address in the list"},
		{[]string{"-registry", "etcd://h:1/ns", "list"}, "unexpected path after the address"},
		{[]string{"-registry", "etcd://user:pw@h:1", "list"}, "credentials go in parameters"},
		{[]string{"-registry", "consul://a:8500,b:8500", "list"}, "consul takes one agent address, not 2"},
		{[]string{"-registry", "consul://a:8500?scheme=ftp", "list"}, `scheme="ftp": want http or https`},
		{[]string{"-registry", "zk://h:2181?namespace=/x", "list"}, `unknown parameter "namespace" for zk (want ca, cert, insecure_skip_verify, key, name, password, password_file, read_only, root, server_name, timeout, tls, ttl, user)`},
		{[]string{"-registry", "file://", "list"}, "no file path"},
		{[]string{"-registry", "zk://h:2181?password=x", "list"}, "password without a user name"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := wantCode(t, regctl(t, tc.args...), 2)
			wantContains(t, "stderr", r.stderr, tc.msg, "Run 'regctl -h' for usage.")
			if !strings.HasPrefix(r.stderr, "regctl: ") {
				t.Errorf("stderr = %q, want it to start with \"regctl: \"", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"-help"}, {"help"}, {"get", "-h"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := wantCode(t, regctl(t, args...), 0)
			wantContains(t, "usage", r.stdout, "Usage:", "regctl [flags] get NAME", "snapshot inspect FILE",
				"etcd://HOST:PORT", "consul://", "zk://", "file:///", "-registry URL", "-timeout", "-count N", "Exit status:")
			if r.stderr != "" {
				t.Errorf("stderr = %q, want nothing", r.stderr)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		json bool
	}{
		{[]string{"-json", "get", "greeter"}, []string{"get", "greeter"}, true},
		{[]string{"get", "greeter", "-json"}, []string{"get", "greeter"}, true},
		{[]string{"get", "-json", "--", "-x"}, []string{"get", "-x"}, true},
		{[]string{"snapshot", "dump", "a.db"}, []string{"snapshot", "dump", "a.db"}, false},
	} {
		o, pos, err := parseArgs(tc.args)
		if err != nil {
			t.Errorf("parseArgs(%q): %v", tc.args, err)
			continue
		}
		if !slices.Equal(pos, tc.pos) || o.json != tc.json {
			t.Errorf("parseArgs(%q) = %q, json %v; want %q, json %v", tc.args, pos, o.json, tc.pos, tc.json)
		}
	}
}

func TestTargetString(t *testing.T) {
	for spec, want := range map[string]string{
		"etcd://a:1,b:2?namespace=/x&username=u&password=secret": "etcd://a:1,b:2?namespace=/x&username=u",
		"consul://127.0.0.1:8500?token=secret&dc=eu1":            "consul://127.0.0.1:8500?dc=eu1",
		"ZooKeeper://h:2181/":                                    "zk://h:2181",
		"file:///var/lib/x.db":                                   "file:///var/lib/x.db",
	} {
		tg, err := parseTarget(spec)
		if err != nil {
			t.Errorf("parseTarget(%q): %v", spec, err)
			continue
		}
		if got := tg.String(); got != want {
			t.Errorf("parseTarget(%q).String() = %q, want %q (and never a secret)", spec, got, want)
		}
	}
}

// Messages about a bad -registry URL never repeat its secrets.
func TestRedact(t *testing.T) {
	for _, args := range [][]string{
		{"-registry", "etcd://admin:s3cret@h:2379", "list"},
		{"-registry", "etcd://h:2379?username=admin&password=s3cret&bogus=1", "list"},
		{"-registry", "consul://h:8500?token=s3cret&bogus=1", "list"},
		{"-registry", "zk://h:2181/root?user=admin&password=s3cret", "list"},
	} {
		r := wantCode(t, regctl(t, args...), 2)
		if strings.Contains(r.stderr, "s3cret") {
			t.Errorf("%q: the message shows the secret:\n%s", args, r.stderr)
		}
		wantContains(t, "stderr", r.stderr, "REDACTED")
	}
}
