package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/redact"
	"github.com/regchain/regchain/registry"
)

// Config configures a Handler. The zero Config serves the status, the page
// and the probes with the default readiness rules, and refuses mutations.
type Config struct {
	// Rules configure readiness.
	Rules Rules
	// Mutations enables the operator's switches (freeze, unfreeze,
	// release, rollback). If false, they answer 403.
	Mutations bool
	// Token, when set, is the bearer token every mutation must carry. If
	// empty, only loopback callers may mutate.
	Token string
	// Hosts are the host names (no port) the handler answers to, besides
	// IP addresses: a request whose Host header names another host is
	// refused (403), so that a web page whose name an attacker made
	// resolve to the admin port (DNS rebinding) can neither read it nor
	// mutate. If nil, "localhost". Add the names the handler is reached by
	// (a DNS name, a reverse proxy's); compared without case and without a
	// trailing dot.
	Hosts []string
	// Title names the process on the status page. If empty, "regchain".
	Title string
	// Refresh is how often the status page refreshes itself. If zero, 2s.
	Refresh time.Duration
	// Logger logs the mutations. If nil, slog.Default().
	Logger *slog.Logger
}

type rawConfig Config // without methods, for Format

// Format implements fmt.Formatter: every verb prints the fields with the
// Token masked.
func (c Config) Format(f fmt.State, verb rune) { redact.Format(f, verb, c.masked()) }

// LogValue implements slog.LogValuer: the fields with the Token masked.
func (c Config) LogValue() slog.Value { return redact.LogValue(c.masked()) }

func (c Config) masked() any {
	type Config rawConfig
	m := Config(c)
	m.Token = redact.Secret(m.Token)
	return m
}

// Handler is the admin http.Handler of one chain. It is safe for
// concurrent use.
type Handler struct {
	c     *chain.Chain
	cfg   Config
	hosts map[string]bool // the names of Config.Hosts, lower case
	log   *slog.Logger
	now   func() time.Time
	csrf  http.CrossOriginProtection // zero: same origin only
}

// String returns "admin.Handler(mutations MODE)", for messages.
func (h *Handler) String() string { return "admin.Handler(mutations " + h.mode() + ")" }

// Format implements fmt.Formatter: every verb prints String, never the
// fields (the configuration holds the token).
func (h *Handler) Format(f fmt.State, verb rune) { redact.FormatShort(f, verb, h.String(), h.String()) }

// LogValue implements slog.LogValuer: String.
func (h *Handler) LogValue() slog.Value { return slog.StringValue(h.String()) }

// New returns the admin handler of c.
func New(c *chain.Chain, cfg Config) *Handler {
	if cfg.Title == "" {
		cfg.Title = "regchain"
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 2 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	hosts := map[string]bool{}
	if cfg.Hosts == nil {
		hosts["localhost"] = true
	}
	for _, name := range cfg.Hosts {
		hosts[strings.TrimSuffix(strings.ToLower(name), ".")] = true
	}
	return &Handler{c: c, cfg: cfg, hosts: hosts, log: log, now: time.Now}
}

// securityHeaders are sent with every answer: the page may not be framed
// (clickjacking of its buttons), run or load anything but its own inline
// script and style sheet, or be sniffed as another type; no answer may be
// read by another origin's page as a resource, or carry a referrer away.
var securityHeaders = map[string]string{
	"Content-Security-Policy":      contentSecurityPolicy,
	"X-Frame-Options":              "DENY",
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Resource-Policy": "same-origin",
}

// hostAllowed reports whether the Host header names this handler: an IP
// address (a page on another name cannot make a browser send one, short
// of being served from that address), or one of Config.Hosts. A request
// without a Host (HTTP/1.0, not a browser) is allowed.
func (h *Handler) hostAllowed(host string) bool {
	if host == "" {
		return true
	}
	if name, _, err := net.SplitHostPort(host); err == nil {
		host = name
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return h.hosts[strings.TrimSuffix(strings.ToLower(host), ".")]
}

// ServeHTTP routes on the last element of the request's path.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	name := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	if !h.hostAllowed(r.Host) {
		msg := fmt.Sprintf("host %s is not a name of this handler: add it to admin.Config.Hosts", registry.Quote(r.Host))
		if isMutation(name) {
			h.refused(r, name, msg)
		}
		writeError(w, http.StatusForbidden, msg)
		return
	}
	switch name {
	case "", "status", "readyz", "livez":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use GET", r.Method, name))
			return
		}
	case "freeze", "unfreeze", "release", "rollback":
		h.mutate(w, r, name)
		return
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s (want status, readyz, livez, freeze, unfreeze, release or rollback)", registry.Quote(name)))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	switch name {
	case "":
		h.page(w, r)
	case "status":
		writeJSON(w, http.StatusOK, h.report(h.c.Status(), h.now()))
	case "readyz":
		st := h.c.Status()
		reasons := h.notReady(st, h.c.RegistrationTiers())
		code := http.StatusOK
		if len(reasons) > 0 {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, struct {
			Ready   bool        `json:"ready"`
			Level   chain.Level `json:"level"`
			Reasons []string    `json:"reasons,omitempty"`
		}{len(reasons) == 0, st.Degradation.Level, reasons})
	case "livez":
		code := http.StatusOK
		if !h.live() {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, struct {
			Live bool `json:"live"`
		}{code == http.StatusOK})
	}
}

// notReady returns why the process is not ready (none: ready): the chain
// is closed, or rules fail.
func (h *Handler) notReady(st chain.Status, held map[string][]string) []string {
	reasons := h.cfg.Rules.check(st, held)
	if !h.live() {
		reasons = append([]string{"the chain is closed"}, reasons...)
	}
	return reasons
}

// live reports whether the chain is open.
func (h *Handler) live() bool {
	return !errors.Is(h.c.Ping(context.Background()), registry.ErrClosed)
}

// mode names the mutation mode: "off", "token" or "loopback".
func (h *Handler) mode() string {
	switch {
	case !h.cfg.Mutations:
		return "off"
	case h.cfg.Token != "":
		return "token"
	}
	return "loopback"
}

// MutationResult is the answer to a successful mutation.
type MutationResult struct {
	OK      bool        `json:"ok"`
	Action  string      `json:"action"`
	Service string      `json:"service,omitempty"`
	Frozen  bool        `json:"frozen"`
	Level   chain.Level `json:"level"`
}

func isMutation(name string) bool {
	switch name {
	case "freeze", "unfreeze", "release", "rollback":
		return true
	}
	return false
}

// refused logs a refused mutation, once, with the reason.
func (h *Handler) refused(r *http.Request, action, reason string) {
	h.log.Warn("admin: mutation refused", "action", action, "reason", reason, "method", registry.Clip(r.Method),
		"remote", registry.Clip(r.RemoteAddr), "host", registry.Clip(r.Host), "origin", registry.Clip(r.Header.Get("Origin")))
}

func (h *Handler) mutate(w http.ResponseWriter, r *http.Request, action string) {
	if r.Method != http.MethodPost {
		msg := fmt.Sprintf("%s %s: mutations are POST only", registry.Quote(r.Method), action)
		h.refused(r, action, msg)
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, msg)
		return
	}
	if code, msg := h.authorize(r); code != 0 {
		h.refused(r, action, msg)
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="regchain admin"`)
		}
		writeError(w, code, action+": "+msg)
		return
	}
	var service string
	if action == "release" || action == "rollback" {
		var err error
		if service, err = serviceParam(r); err != nil {
			writeError(w, http.StatusBadRequest, action+": "+err.Error())
			return
		}
	}
	var err error
	switch action {
	case "freeze":
		h.c.Freeze(true)
	case "unfreeze":
		h.c.Freeze(false)
	case "release":
		err = h.c.ReleaseHold(service)
	case "rollback":
		err = h.c.Rollback(service)
	}
	h.log.Warn("admin: operator mutation", "action", action, "service", service, "remote", r.RemoteAddr, "error", err)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, registry.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, MutationResult{OK: true, Action: action, Service: service, Frozen: h.c.Frozen(), Level: h.c.Degradation().Level})
}

// authorize returns 0 when r may mutate, else the status code and why not.
func (h *Handler) authorize(r *http.Request) (int, string) {
	if !h.cfg.Mutations {
		return http.StatusForbidden, "mutations are disabled (admin.Config.Mutations)"
	}
	if err := h.csrf.Check(r); err != nil {
		return http.StatusForbidden, "a browser request from another origin: " + err.Error()
	}
	if h.cfg.Token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(h.cfg.Token)) != 1 {
			return http.StatusUnauthorized, "missing or wrong bearer token"
		}
		return 0, ""
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return http.StatusForbidden, fmt.Sprintf("caller %s is not on loopback; set admin.Config.Token to allow remote mutations", r.RemoteAddr)
	}
	return 0, ""
}

// serviceParam reads the service from ?service= or a JSON body
// {"service": ...}.
func serviceParam(r *http.Request) (string, error) {
	if s := r.URL.Query().Get("service"); s != "" {
		return s, registry.ValidateName(s)
	}
	var body struct {
		Service string `json:"service"`
	}
	if r.Body != nil {
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
		if err := dec.Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("bad JSON body: %s", registry.Quote(err.Error()))
		}
	}
	if body.Service == "" {
		return "", errors.New(`no service: give ?service=NAME or the body {"service": "NAME"}`)
	}
	return body.Service, registry.ValidateName(body.Service)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, struct {
		Error string `json:"error"`
	}{msg})
}
