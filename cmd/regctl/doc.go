// Command regctl is regchain's operator CLI: it lists, reads and watches the
// services of any registry regchain speaks to (etcd, Consul, ZooKeeper, a
// bbolt registry file), and dumps or checks the snapshot file the chain
// falls back to when every registry is down.
//
//	go install github.com/regchain/regchain/cmd/regctl@latest
//
// # Usage
//
//	regctl [flags] list                    service names, one per line
//	regctl [flags] get NAME                the service's instances
//	regctl [flags] watch [NAME]            print every change of NAME (of every service without NAME)
//	regctl [flags] ping                    exit 0 if the registry answers
//	regctl [flags] snapshot dump FILE      every entry of a snapshot file
//	regctl [flags] snapshot inspect FILE   check a snapshot file and summarize it
//
// Against a running process's admin handler (package admin, mounted at
// URL, e.g. http://127.0.0.1:9901/admin/):
//
//	regctl [flags] status URL              level, readiness, tiers, services, registrations
//	regctl [flags] freeze URL              serve every service its last known good state
//	regctl [flags] unfreeze URL            back to the tiers
//	regctl [flags] release URL SERVICE     let a held drop through, end a rollback
//	regctl [flags] rollback URL SERVICE    serve SERVICE its last known good state
//
// status -json prints the handler's report (decoded and encoded again).
// Mutations send a bearer token (admin.Config.Token) when one is given:
// -token-file, -token or $REGCTL_TOKEN; -timeout bounds each request.
//
// Manual repair against the -registry backend:
//
//	regctl [flags] register NAME ID ENDPOINT... [version=V] [KEY=VALUE...]
//	regctl [flags] register '{"id":...,"name":...,"endpoints":[...]}'
//	regctl [flags] deregister NAME ID
//
// register keeps the instance registered (heartbeats, lease renewals) until
// interrupted, then deregisters it: etcd, Consul and ZooKeeper drop a
// registration whose owner is gone, so it cannot outlive regctl there; a
// file registry keeps it and register returns at once. deregister removes
// an instance whoever registered it (on Consul: one registered through the
// same agent), and fails with "not found" when the backend does not show it.
// It is for stale entries whose owner is gone: a live owner (a regchain
// adapter) puts its registration back.
//
// Flags may come before or after the command:
//
//	-registry URL   the registry (default $REGCTL_REGISTRY, else etcd://127.0.0.1:2379)
//	-timeout D      bound on each call to the registry or file (default 5s)
//	-json           JSON output: get prints the instances in Kratos' ServiceInstance
//	                layout, watch one object per line, list an array of names
//	-count N        watch: exit after N updates (default 0: until interrupted)
//	-v              log the backend's debug messages to stderr
//	-user NAME      etcd user or ZooKeeper digest user (password: -password-file, else $REGCTL_PASSWORD)
//	-password-file FILE
//	                the etcd or ZooKeeper password is in FILE
//	-token T        Consul ACL token (default $CONSUL_HTTP_TOKEN); for the admin
//	                commands, the bearer token (default $REGCTL_TOKEN)
//	-token-file FILE
//	                the token of -token is in FILE
//	-tls, -ca FILE, -cert FILE, -key FILE, -server-name NAME
//	                TLS to etcd, Consul and ZooKeeper's secure client port
//	                (mutual TLS with -cert and -key)
//
// # Registries
//
//	etcd://HOST:PORT[,HOST:PORT...][?namespace=/microservices&username=U&password=P]
//	consul://HOST:PORT[?token=T&dc=DC&scheme=https]
//	zk://HOST:PORT[,HOST:PORT...][?root=/microservices&user=U&password=P]
//	file:///path/to/registry.db
//
// The address may be left out for a backend's default (etcd 127.0.0.1:2379,
// Consul what CONSUL_HTTP_ADDR or 127.0.0.1:8500 says, ZooKeeper
// 127.0.0.1:2181). With a username (user for ZooKeeper) and no password
// parameter, the password is read from -password-file or $REGCTL_PASSWORD,
// so that it need not show in the process list (password=, token= and
// -token do show there; password_file= and token_file= name files). The Consul
// token defaults to $CONSUL_HTTP_TOKEN, and Consul's other CONSUL_* variables
// (CONSUL_CACERT, ...) apply as they do to the consul command. "zookeeper"
// is accepted for "zk". A file registry is opened read-only.
//
// -registry is the compact form of package regconfig: every backend also
// takes tls=true, ca=, cert=, key=, server_name=, ttl=,
// timeout=, name= and read_only=true, and several elements separated by
// '|' make a chain, with static:///peers.json, snapshot:///path and
// chain:?name=N elements. Flags fill what the URLs leave unset.
//
// # Output
//
// get prints a table of ID, VERSION, ENDPOINTS and METADATA. watch prints
// one line per Update (a complete state, never a delta):
//
//	2025-06-01T10:00:00.000+02:00 service=greeter source=etcd revision=42 count=2 ids=i-1,i-2
//
// The time is when the source last confirmed the state. snapshot dump
// prints, per service, the source, revision, age and save time of the entry
// and its instances; snapshot inspect prints whether the file checks out,
// how many services and instances it holds and its oldest and newest
// entries.
//
// # Exit status
//
//	0  success (for watch: -count reached, or interrupted by SIGINT/SIGTERM)
//	1  the operation failed; the message on stderr names the cause: not found,
//	   unavailable, invalid, locked, corrupt, unsupported schema, ...
//	2  usage error
//	3  status: the process answered and is not ready (the status is printed)
//	4  freeze, unfreeze, release, rollback: the handler refused the mutation
//	   (mutations disabled, caller not on loopback, missing or wrong token)
//
// # Examples
//
//	regctl -registry etcd://10.0.0.1:2379,10.0.0.2:2379 list
//	regctl -registry 'consul://127.0.0.1:8500?dc=eu1' get -json greeter
//	regctl -registry zk://127.0.0.1:2181 watch -count 3 greeter
//	regctl snapshot inspect /var/lib/app/snapshot.db
//
// # Caveats
//
// A bbolt file is locked by the process that has it open: inspecting the
// snapshot or registry file of a running service fails with "locked" after
// -timeout. Inspect a copy instead (cp; the copy of a file being written
// may be torn and reported corrupt: try again).
//
// watch on a file registry shows the file's state when it was opened: it
// does not see later changes, which only the process owning the file makes.
//
// The two kinds of bbolt file are not interchangeable: snapshot commands
// given a registry file say so, but a snapshot file given as a file://
// registry reads as an empty registry.
//
// snapshot dump and inspect exit 1 when entries of an otherwise readable
// file could not be decoded (they are skipped, and named on stderr), so a
// damaged snapshot is never mistaken for a smaller one.
//
// TLS is available for Consul through its CONSUL_* variables and
// ?scheme=https; etcd and ZooKeeper connections are plain TCP.
// # Output
//
// What regctl prints comes from registries, files and servers, which may
// hold anything: nothing of it reaches the terminal raw. In text output
// every value is escaped where it does not print as itself (control
// characters, newlines and tabs included, bidirectional controls, bytes
// that are not UTF-8: \x1b, \n, \u202e, \xff), so a service name, a
// snapshot's source or a server's error can neither forge a line nor
// drive the terminal. Everything regctl writes, JSON and messages
// included, has the characters a terminal acts on escaped (\u001b,
// \u009b, ...); JSON stays valid JSON and means the same.
package main
