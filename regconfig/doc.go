// Package regconfig builds a registry — one backend, or a whole chain —
// from one configuration value, so that applications configure regchain
// the way they configure everything else: a YAML or JSON file (Config has
// json and yaml tags; Kratos' config.Scan decodes into it), or a compact
// string for a flag or an environment variable (Parse).
//
// # The config value
//
//	backends:                 # the chain's tiers, in order of preference
//	  - type: etcd            # etcd | consul | zk | file
//	    endpoints: [10.0.0.1:2379, 10.0.0.2:2379]
//	    namespace: /microservices
//	    username: app
//	    password_file: /run/secrets/etcd-password
//	    ttl: 15s
//	    tls: {ca_file: /etc/ssl/etcd-ca.pem, cert_file: c.pem, key_file: c.key}
//	  - type: consul
//	    endpoints: [127.0.0.1:8500]
//	    token_env: CONSUL_HTTP_TOKEN
//	snapshot: {path: /var/lib/app/registry-snapshot.db, max_age: 24h}
//	static:                   # the last tier: a fixed list, and/or a file
//	  file: /etc/app/peers.json
//	chain: {name: app, read_policy: first-healthy, failback_after: 10s}
//
// # The compact string
//
// Elements separated by "|" (quote it in a shell), each a URL:
//
//	etcd://10.0.0.1:2379,10.0.0.2:2379?namespace=/ms&username=app&ttl=15s&ca=/ca.pem&cert=/c.pem&key=/c.key
//	consul://127.0.0.1:8500?token=T&dc=eu1&scheme=https
//	zk://10.0.0.5:2281?root=/ms&user=app&password=P&ca=/ca.pem
//	file:///var/lib/app/registry.db
//	static:///etc/app/peers.json?poll=5s
//	snapshot:///var/lib/app/registry-snapshot.db?max_age=24h
//	chain:?name=app&read_policy=merge&failback_after=10s
//
// Backend elements become tiers in the order given; static, snapshot and
// chain may each appear once, anywhere. Every backend element also accepts
// name=, read_only=true and timeout=; TLS parameters are tls=true, ca=,
// cert=, key=, server_name= and insecure_skip_verify=true; etcd and zk take
// password_file=, consul token_file=. Config.String
// prints a config back in this form, with secrets left out.
//
// # Rules
//
//   - Validate reports the first fault with the field's path and what is
//     wrong ("backends[1].endpoints[0]: \"h:x\": port is not a number");
//     Parse reports it with the element. Both errors wrap
//     registry.ErrInvalid. Nothing is opened before the whole config is
//     valid.
//   - Open returns the backend itself when the config is one backend and
//     nothing else; otherwise a *Chain over the backends, then the static
//     tier (read-only), with the snapshot store. Closing what Open returns
//     closes everything Open opened.
//   - A password or token is better kept out of the config: it may come
//     from a file (password_file, token_file; read by Open, bounded, a
//     trailing newline dropped) or from the environment (password_env,
//     token_env; in the compact form, the caller's PasswordEnv/TokenEnv).
//   - Secrets never show: Config and Backend print without them under
//     every fmt verb (String, %v: the compact form; %+v, %#v: the fields,
//     masked) and in slog (LogValue). Redact masks the value of every
//     parameter that is not a known one without a secret (password and
//     token whatever their spelling or escaping, misspelt and unknown
//     ones), and user info before an "@"; errors show elements only
//     redacted, and quote input bounded (registry.Quote).
//   - TLS settings with an http:// etcd endpoint, or Consul's scheme=http,
//     are an error: the connection would be plaintext, or not what was
//     written. Credentials in an endpoint ("https://user:pw@host") are
//     one too.
//   - Files Open reads (TLS PEM files, secret files) must be regular files
//     of bounded size: a FIFO or a device is refused at once.
//   - Zero durations and counts mean the defaults of the package that uses
//     them (adapters/etcd, adapters/consul, adapters/zk, chain).
package regconfig
