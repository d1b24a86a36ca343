package kubernetes

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/regchain/regchain/registry"
)

// Defaults applied by New to the zero fields of Config.
const (
	// DefaultNamespace is the namespace of last resort, when neither
	// Config.Namespace, $POD_NAMESPACE nor the service account's namespace
	// file names one.
	DefaultNamespace = "default"
	// DefaultTimeout bounds each request of the registry: writes, probes,
	// reads of a single object (a list of an informer gets six times as
	// long).
	DefaultTimeout = 10 * time.Second
	// DefaultMaxBackoff caps the delay between retries of a registration's
	// upkeep while the API server answers but refuses or fails. An API
	// server coming back after an outage wakes every retry at once.
	DefaultMaxBackoff = 5 * time.Second
	// DefaultProbeInterval is how often an unreachable API server is
	// probed (GET /readyz) while the registry's informers or upkeep wait
	// for it.
	DefaultProbeInterval = 200 * time.Millisecond
)

// Environment variables New reads for the zero fields of Config. Set them
// with the downward API:
//
//	env:
//	- name: POD_NAME
//	  valueFrom: {fieldRef: {fieldPath: metadata.name}}
//	- name: POD_NAMESPACE
//	  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
const (
	EnvPodName      = "POD_NAME"
	EnvPodNamespace = "POD_NAMESPACE"
)

// serviceAccountNamespace is where a Pod finds its namespace (also read by
// Kratos' contrib registry).
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// KratosMode says whether a Registry reads, and writes, the layout of
// Kratos' contrib Kubernetes registry (see the package doc, "Kratos'
// layout").
type KratosMode int

const (
	// KratosOff reads EndpointSlices only (the zero value).
	KratosOff KratosMode = iota
	// KratosRead also reads the Pods Kratos' contrib registry labels
	// (kratos-service-app), so that Kratos apps registered that way are
	// discovered next to EndpointSlice instances. It needs get, list and
	// watch on pods.
	KratosRead
	// KratosReadWrite reads as KratosRead, and Register labels and
	// annotates this process's own Pod (Config.Pod) the way Kratos'
	// Register does, instead of writing an EndpointSlice: Kratos apps
	// using the contrib registry discover this process. It needs patch on
	// pods, and holds one instance per Pod.
	KratosReadWrite
)

func (m KratosMode) String() string {
	switch m {
	case KratosOff:
		return "off"
	case KratosRead:
		return "read"
	case KratosReadWrite:
		return "read-write"
	}
	return fmt.Sprintf("KratosMode(%d)", int(m))
}

// Config configures New. The zero value works inside a Pod: the in-cluster
// client, the Pod's namespace (read and written), EndpointSlices only.
type Config struct {
	// Client is a ready clientset. When set, REST is ignored and Close
	// leaves the client alone: it belongs to the caller.
	Client k8s.Interface
	// REST configures the client New creates when Client is nil. If nil,
	// the in-cluster configuration (the Pod's service account), else the
	// kubeconfig that $KUBECONFIG or ~/.kube/config names, at its current
	// context. A QPS or Burst of zero is raised to 50 and 100 (client-go's
	// defaults, 5 and 10, would throttle the upkeep of many
	// registrations).
	REST *rest.Config

	// Namespace is where Register writes its EndpointSlices and where
	// Config.Pod lives. If empty, $POD_NAMESPACE, else the service
	// account's namespace file, else "default".
	Namespace string
	// Namespaces are the namespaces read: a service's instances are those
	// of every listed namespace. If empty, Namespace alone. An entry equal
	// to metav1.NamespaceAll ("") reads every namespace, which needs
	// cluster-wide list and watch permissions.
	Namespaces []string
	// LabelSelector narrows what is read (EndpointSlices, and Pods with
	// KratosRead) to the objects it selects, in Kubernetes' label selector
	// syntax ("tier=backend,env!=test"). If empty, everything.
	LabelSelector string
	// Kratos says whether Kratos' contrib layout is read (and written). If
	// zero, KratosOff.
	Kratos KratosMode
	// Pod is the name of the Pod this process runs in, in Namespace. The
	// EndpointSlices Register writes get an owner reference to it (the
	// garbage collector deletes them with the Pod), and KratosReadWrite
	// labels it. If empty, $POD_NAME; else, when the service account's
	// namespace file exists (inside a Pod), $HOSTNAME, as Kratos does;
	// else none: slices get no owner.
	Pod string

	// Timeout bounds each request of the registry: writes, probes and
	// single reads (a caller's ctx with a later deadline, or none, is cut
	// to it); a list of an informer gets six times as long. If zero, 10s.
	Timeout time.Duration
	// MaxBackoff caps the jittered exponential delay between retries of a
	// registration's upkeep while the API server answers but refuses or
	// fails. If zero, 5s.
	MaxBackoff time.Duration
	// ProbeInterval is how often an unreachable API server is probed
	// while informers or upkeep wait for it: a registration is back, and
	// watchers resume, within about this long of the API server answering
	// again. If zero, 200ms.
	ProbeInterval time.Duration

	// Logger receives the registry's warnings (records skipped, upkeep
	// failures, the API server lost and back) and debug messages, and
	// client-go's own log lines of the registry's informers. If nil,
	// slog.Default().
	Logger *slog.Logger
}

// withDefaults returns c with its zero fields set, or an error wrapping
// registry.ErrInvalid.
func (c Config) withDefaults() (Config, error) {
	inPod := false
	if _, err := os.Stat(serviceAccountNamespace); err == nil {
		inPod = true
	}
	if c.Namespace == "" {
		c.Namespace = os.Getenv(EnvPodNamespace)
	}
	if c.Namespace == "" && inPod {
		if b, err := os.ReadFile(serviceAccountNamespace); err == nil {
			c.Namespace = strings.TrimSpace(string(b))
		}
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.Pod == "" {
		c.Pod = os.Getenv(EnvPodName)
	}
	if c.Pod == "" && inPod {
		c.Pod = os.Getenv("HOSTNAME")
	}
	if len(c.Namespaces) == 0 {
		c.Namespaces = []string{c.Namespace}
	} else {
		c.Namespaces = slices.Clone(c.Namespaces)
		slices.Sort(c.Namespaces)
		c.Namespaces = slices.Compact(c.Namespaces)
		if c.Namespaces[0] == metav1.NamespaceAll {
			c.Namespaces = []string{metav1.NamespaceAll} // every namespace covers the others
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if err := validName("namespace", c.Namespace); err != nil {
		return c, err
	}
	for _, ns := range c.Namespaces {
		if ns == metav1.NamespaceAll {
			continue
		}
		if err := validName("namespace", ns); err != nil {
			return c, err
		}
	}
	if c.Pod != "" {
		if err := validName("pod", c.Pod); err != nil {
			return c, err
		}
	}
	if _, err := labels.Parse(c.LabelSelector); err != nil {
		return c, fmt.Errorf("kubernetes: %w: LabelSelector %q: %w", registry.ErrInvalid, c.LabelSelector, err)
	}
	switch c.Kratos {
	case KratosOff, KratosRead:
	case KratosReadWrite:
		if c.Pod == "" {
			return c, fmt.Errorf("kubernetes: %w: KratosReadWrite labels this process's Pod, and Config.Pod, $%s and $HOSTNAME (inside a Pod) are all empty", registry.ErrInvalid, EnvPodName)
		}
	default:
		return c, fmt.Errorf("kubernetes: %w: unknown KratosMode %d", registry.ErrInvalid, int(c.Kratos))
	}
	return c, nil
}

// validName checks a namespace or object name: a DNS subdomain (lower-case
// letters, digits, '-' and '.', at most 253 bytes).
func validName(what, s string) error {
	if len(s) == 0 || len(s) > 253 {
		return fmt.Errorf("kubernetes: %w: %s %q is not a valid name (1 to 253 bytes)", registry.ErrInvalid, what, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.'
		if !ok || (i == 0 || i == len(s)-1) && (c == '-' || c == '.') {
			return fmt.Errorf("kubernetes: %w: %s %q is not a valid name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)", registry.ErrInvalid, what, s)
		}
	}
	return nil
}

// restConfig returns the configuration of the client New creates.
func (c Config) restConfig() (*rest.Config, error) {
	raise := func(cfg *rest.Config) *rest.Config {
		if cfg.QPS == 0 {
			cfg.QPS = 50
		}
		if cfg.Burst == 0 {
			cfg.Burst = 100
		}
		return cfg
	}
	if c.REST != nil {
		return raise(rest.CopyConfig(c.REST)), nil
	}
	cfg, err := rest.InClusterConfig()
	if err == nil {
		return raise(cfg), nil
	}
	if !errors.Is(err, rest.ErrNotInCluster) {
		return nil, fmt.Errorf("kubernetes: %w: in-cluster config: %w", registry.ErrInvalid, err)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w: not in a cluster, and no usable kubeconfig: %w", registry.ErrInvalid, err)
	}
	return raise(cfg), nil
}

// newClient returns a clientset over an HTTP transport of its own, so that
// Close can close its connections (client-go otherwise shares transports
// process-wide and keeps them).
func newClient(cfg *rest.Config) (k8s.Interface, *http.Transport, error) {
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes: %w: TLS config: %w", registry.ErrInvalid, err)
	}
	tr := &http.Transport{
		TLSClientConfig:     tlsCfg,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 25,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	if cfg.Proxy != nil {
		tr.Proxy = cfg.Proxy
	}
	// client-go's defaults: a proxy from the environment, HTTP/2 with a
	// connection health check (a ping after 30s without a frame, the
	// connection dropped 15s later without an answer).
	utilnet.SetTransportDefaults(tr)
	rt, err := rest.HTTPWrappersForConfig(cfg, tr)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, nil, fmt.Errorf("kubernetes: %w: client: %w", registry.ErrInvalid, err)
	}
	cs, err := k8s.NewForConfigAndClient(cfg, &http.Client{Transport: rt, Timeout: cfg.Timeout})
	if err != nil {
		tr.CloseIdleConnections()
		return nil, nil, fmt.Errorf("kubernetes: %w: client: %w", registry.ErrInvalid, err)
	}
	return cs, tr, nil
}
