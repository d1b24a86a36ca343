// Package kubetest runs a real kube-apiserver on loopback for tests,
// benchmarks and examples: the binary scripts/install-kube-apiserver.sh
// builds and caches (or $REGCHAIN_KUBE_APISERVER), over an etcd of its own
// from package embedetcd, with a throw-away PKI, a static token file and
// free ports.
//
// The server listens on a port that stays the same across Stop and Start,
// so clients reconnect to a restarted server as they would to a real one.
// Wipe and Restore change the history of its etcd under its clients, the
// API server stopped meanwhile (as a restore of a real cluster's etcd
// requires).
//
// Users: UserAdmin (group system:masters: everything is allowed),
// UserReader and UserWriter (no group: with Options.RBAC they may do what
// the test grants them through Roles and RoleBindings). Server.Config
// gives a client configuration for each.
//
// # Caveats
//
// There is no controller manager: nothing garbage-collects objects whose
// owner is gone, no EndpointSlice controller fills slices for Services
// with selectors, no kubelet runs Pods (tests set a Pod's status
// themselves). The server runs with --endpoint-reconciler-type=none and
// without the ServiceAccount admission plugin for that reason.
//
// A test that cannot get the binary fails with a message saying why; it is
// never skipped. The API server dies with the process that started it
// (Linux: PR_SET_PDEATHSIG).
package kubetest
