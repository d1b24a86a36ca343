// Package consultest starts real Consul agents for tests: `consul agent -dev`
// on loopback, every port (HTTP, gRPC, Serf LAN and WAN, server RPC, DNS)
// a free one, gRPC-TLS off, optionally with ACLs enabled (default policy
// deny, a known management token) and an HTTPS listener.
//
// The agent binary is $REGCHAIN_CONSUL when set, else what
// scripts/install-consul.sh prints: the script builds Consul from its Go
// module once (a few minutes) and then returns the cached binary at once.
// A test that cannot get a binary fails with a message saying why; it is
// never skipped.
//
// # Caveats
//
// Dev mode keeps everything in memory: Restart brings up an empty agent (a
// new cluster, indexes starting over) on the same ports, which is what the
// fault tests want. Restart can fail if another process grabbed one of the
// ports while the agent was down; the test then fails with the agent's log.
//
// Agents die with the test binary (Linux: PR_SET_PDEATHSIG), so a crashed or
// timed-out test leaves no agent behind.
package consultest
