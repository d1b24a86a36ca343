// Package kubernetes is regchain's Kubernetes backend: a registry.Registry
// that reads the EndpointSlices of Kubernetes Services (and, optionally,
// the Pods Kratos' contrib Kubernetes registry labels) through client-go
// informers, and registers instances as EndpointSlices of their own, kept
// on the API server while the registry lives.
//
//	r, err := kubernetes.New(kubernetes.Config{}) // in a Pod: its service account and namespace
//	...
//	defer r.Close()
//
// It is a module of its own (github.com/regchain/regchain/adapters/kubernetes),
// so that client-go reaches only the builds that import it.
//
// # Files
//
//   - config.go: Config, its defaults, the client New creates.
//   - registry.go: Registry, New, Close, Ping and the reads (GetService,
//     ListServices) from the informers' caches.
//   - informer.go: the informers, the ListerWatcher that waits out an
//     unreachable API server, the reachability probe.
//   - watch.go: Watch, and the dispatcher that publishes states to
//     registry.Feeds through a registry.Hub.
//   - register.go: Register, Deregister, the upkeep of registrations.
//   - codec.go: EndpointSlices and Pods to instances and back.
//   - errors.go: how API errors map to registry's sentinel errors.
//   - kubetest: a real kube-apiserver for tests and examples.
//
// # Reading
//
// A regchain service is a Kubernetes Service: its instances come from the
// EndpointSlices labelled kubernetes.io/service-name=<name> in the
// namespaces of Config.Namespaces (Config.Namespace alone by default)
// that Config.LabelSelector selects. The same name in two namespaces is
// one service.
//
// Each ready endpoint (conditions.ready true or unset) of a slice gives
// one instance per port, whatever Service it came from (the EndpointSlice
// controller's, a selector-less Service's, another tool's):
//
//   - ID "<address>:<port>", or "<address>:<port>:udp" (":sctp") for a
//     non-TCP port; the address is the endpoint's first (Kubernetes
//     documents the others as interchangeable);
//   - one endpoint URL "<scheme>://<address>:<port>" (IPv6 bracketed);
//     the scheme is the port's appProtocol ("grpc"; "kubernetes.io/h2c"
//     gives "h2c"), else the part of its name before the first '-' when
//     that is a URL scheme ("grpc-api" gives "grpc", the convention
//     Kratos' registry and Istio read), else the protocol in lower case
//     ("tcp");
//   - metadata: "zone" (locality.KeyZone) from the endpoint's zone and
//     "node" (MetaNode) from its nodeName, so the locality wrapper and
//     the balancers order instances inside a cluster with no
//     configuration; MetaNamespace, MetaPod (the endpoint's targetRef) and
//     MetaPort (the port's name) when known;
//   - no version.
//
// A slice written by Register (label endpointslice.kubernetes.io/managed-by
// = ManagedBy, "regchain") is read differently: it holds one instance, the
// JSON of annotation AnnotationInstance, exactly as registered.
//
// A slice or Pod that does not make a valid instance (a record written by
// hand, an annotation of another service) is skipped and logged at WARN
// once per version of the object; it never stops a read or a watcher.
//
// Reads (GetService, ListServices) come from the informers' caches, which
// start with the first read or watch and hold the selected slices (trimmed
// to what reads use). The first read waits for them to sync, for at most
// Config.Timeout. While the API server is known to be unreachable, reads
// answer an error wrapping registry.ErrUnavailable at once rather than the
// cache's aging state: the chain then serves its own last known state, or
// the next tier. A refusal to read (403) answers registry.ErrInvalid and
// ErrPermissionDenied.
//
// # Kratos' layout
//
// With Config.Kratos set to KratosRead, the Pods of the same namespaces
// that carry label kratos-service-app (and match Config.LabelSelector) are
// read too, as Kratos' contrib Kubernetes registry
// (github.com/go-kratos/kratos/contrib/registry/kubernetes) reads them: a
// Running Pod with an IP is an instance with ID, name and version from the
// labels kratos-service-id, kratos-service-app and kratos-service-version
// (an absent ID is the Pod's name here, an empty one there), metadata from
// the JSON of annotation kratos-service-metadata, and one endpoint per
// container port, "<scheme>://<podIP>:<port>", the scheme from the JSON
// port map of annotation kratos-service-protocols, else the port name
// before its first '-', else the port's protocol (lower case here). A Pod
// that declares no container port gets its endpoints from the port map
// (Kratos' reader finds none). Pods being deleted are skipped (Kratos'
// reader keeps them while they run).
//
// With KratosReadWrite, Register writes that layout instead of an
// EndpointSlice: a JSON merge patch of this process's Pod (Config.Pod)
// with the three labels and two annotations, as Kratos' Register does, so
// Kratos apps using the contrib registry discover this process and the
// reverse. The layout holds one instance per Pod, whose name, ID and
// version must be label values; readers see the Pod's IP as every
// endpoint's host. Deregister removes the labels and annotations (Kratos'
// Deregister sets them empty).
//
// # Registrations
//
// Register writes one EndpointSlice per instance, in Config.Namespace,
// named after the service and a hash of its name and ID (found again by
// name: registering the same instance again updates it), labelled
// kubernetes.io/service-name=<name> and managed-by=regchain (the
// EndpointSlice controller leaves it alone), the instance's JSON in
// annotation AnnotationInstance. Its endpoints are what Kubernetes' own
// consumers (kube-proxy, cluster DNS) can use: the host of the instance's
// first endpoint URL whose host is an IP address Kubernetes accepts on an
// endpoint (not loopback, link-local or unspecified), ready, with the
// instance's "zone" and "node", and one port per URL on that host
// (appProtocol the URL's scheme). A selector-less Service of the same name
// then routes cluster traffic to instances registered from outside the
// cluster. An instance with only loopback or host-name endpoints gets a
// slice without endpoints: regchain reads it from the annotation all the
// same.
//
// When this process runs in a Pod (Config.Pod, $POD_NAME, or $HOSTNAME in
// a Pod), its slices carry an owner reference to it: Kubernetes' garbage
// collector deletes them with the Pod, whatever way the process ended.
//
// The slice is kept while the registry lives: an upkeep goroutine watches
// this package's slices in the namespace (one informer) and, when one of
// its registrations' slices is deleted or changed by someone else, or was
// lost with an API server whose etcd was wiped or restored, writes it
// again (only the fields it writes: labels and annotations others add
// stay). A failed write is retried with capped, jittered backoff
// (Config.MaxBackoff) for as long as the registration lives; while the API
// server is unreachable the upkeep waits for the probe and retries the
// moment it answers. Registrations reports each one's state.
//
// Register's ctx bounds its first write (and at most Config.Timeout).
// When that write fails nothing is kept: an unreachable API server wraps
// registry.ErrUnavailable (the chain retries); a refusal for the client's
// permissions (RBAC: 403, or 401) wraps registry.ErrInvalid and
// ErrPermissionDenied, and is not retried by anyone. Names that cannot be
// a label value (":" in a name, more than 63 bytes) and records over
// MaxAnnotationSize are refused with registry.ErrInvalid before anything
// is written; ValidateInstance (registry.Validator) says so without I/O.
//
// Deregister stops the upkeep and deletes the slice. When the API server
// cannot be reached it returns an error wrapping registry.ErrUnavailable,
// and the upkeep goes on trying to delete the slice until it is gone, the
// instance is registered again, or Close.
//
// # Watch
//
// Every watcher is served from the same informers by one dispatcher
// goroutine: an informer event marks the services of the objects it
// touched, and the dispatcher publishes the complete state of each marked
// service that is watched (by name or by a watch-all) to a registry.Hub of
// registry.Feeds, so watchers get full states, deduplicated, latest-wins.
// A new watcher's first state comes from the caches once they have synced.
// Update.Revision is the newest resource version the informers synced to
// (an etcd revision, opaque to clients otherwise); Update.Time is when the
// state was published.
//
// When the watch of an informer expires (410 Gone: the revisions it would
// resume from are compacted) client-go's reflector lists again, and the
// watchers get the states that differ. An API server restarted with
// another history (etcd wiped or restored) answers the reflector's old
// resource version 410 or "too large": it lists again too.
//
// # Outages
//
// client-go's reflector backs off up to 30 s between attempts to reach an
// API server that is down, so a watcher could stay stale that long after
// the server is back. The informers here list and watch through a
// ListerWatcher of this package instead: a request that finds the API
// server unreachable (connection refused or reset, a timeout, 429, 5xx
// such as an API server whose etcd is down) marks it unreachable, tells
// every watcher (a transient error wrapping registry.ErrUnavailable, once
// per outage) and waits for the registry's probe (GET /readyz every
// Config.ProbeInterval) to see it answer; it is then sent again. So
// watchers resume, and the upkeep restores what needs restoring, within
// about one probe interval of the API server answering again. A partition
// that holds packets without resetting connections is noticed by the
// watch connection's HTTP/2 health check (a ping after 30 s without a
// frame, dropped 15 s later without an answer), or at once by Ping. Ping
// is GET /readyz, which the API server answers 200 only when it can serve
// (its etcd included), to any client; a failed Ping also marks the server
// unreachable.
//
// # Errors
//
// Network errors, timeouts, 429 and 5xx answers wrap
// registry.ErrUnavailable. 401 and 403 wrap registry.ErrInvalid and
// ErrPermissionDenied: a configuration problem that failing over would
// hide. Other 4xx answers wrap registry.ErrInvalid.
//
// # Caveats
//
//   - Kubernetes has no lease: a process outside a Pod that dies without
//     Deregister leaves its slice until someone deletes it. Inside a Pod
//     the owner reference makes the garbage collector remove it with the
//     Pod; outside, prefer a tier with TTLs (etcd, Consul) for those
//     instances, or deregister on shutdown (chain.Drain). The registry is
//     no registry.TTLRegistrar.
//   - Deleting the owner Pod without a controller manager (as in tests)
//     deletes nothing: the garbage collector is part of it.
//   - Reads merge namespaces: a service name present in two of the
//     namespaces read is one service.
//   - Instances read from a Service's own slices carry no version, and
//     their zone is only as good as the cluster's node labels
//     (topology.kubernetes.io/zone). Their region is not known: endpoints
//     carry no region, and the registry does not read Nodes.
//   - A watch-all receives every service of the namespaces read, Services
//     that are not regchain services included (kubernetes.io/service-name
//     is on every Service's slices).
//   - Two processes registering the same instance (name and ID) write the
//     same slice: the last write wins, and each process's upkeep puts its
//     own version back after the other's change.
//   - Config.Client passed in is the caller's: its transport, timeouts and
//     rate limits apply (client-go's default of 5 requests a second, burst
//     10, slows down many registrations; New raises the QPS and Burst of
//     its own client when they are zero).
package kubernetes
