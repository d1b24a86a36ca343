// Package admin serves a running chain to operators over HTTP: a JSON
// status, readiness and liveness answers, a status page people read at a
// glance, and (when enabled) the operator's switches. Mount it on the
// admin port the way net/http/pprof or the Prometheus handler is mounted:
//
//	mux := http.NewServeMux()
//	mux.Handle("/admin/", admin.New(c, admin.Config{}))
//	go http.ListenAndServe("127.0.0.1:9901", mux)
//
// # Endpoints
//
// The handler routes on the last element of the request path, so it works
// under any prefix that ends in "/":
//
//	GET  …/          the status page (HTML, refreshes itself)
//	GET  …/status    the JSON status (Report)
//	GET  …/readyz    readiness: 200 when ready, 503 when not, JSON with the reasons
//	GET  …/livez     liveness: 200 while the chain is open, 503 after Close
//	POST …/freeze    Freeze(true): serve every service its last known good state
//	POST …/unfreeze  Freeze(false)
//	POST …/release?service=NAME   ReleaseHold: let a held drop through, end a rollback
//	POST …/rollback?service=NAME  Rollback: serve NAME its last known good state
//
// The service of release and rollback may also come as a JSON body
// {"service": "NAME"}. Every answer but the page is JSON; an error is
// {"error": "..."} with a status code that says its kind: 400 a bad
// request (no or invalid service name), 401 a missing or wrong token, 403
// mutations disabled, a non-loopback caller, a browser request from
// another origin or a Host the handler does not answer to, 404 an unknown path or
// nothing to release or roll back, 405 a method other than GET (HEAD) for
// reads or POST for mutations (with an Allow header), 500 anything else.
//
// # Readiness rules
//
// Liveness says whether the process should be restarted: it is live while
// the chain is open, whatever the registries do (restarting a process
// because its registry is down helps nobody). Readiness says whether the
// process should take traffic; Rules configure it, and the zero Rules mean
// "ready unless registrations cannot be written anywhere" (level L3). The
// process is ready when the chain is open (not Closed) and every rule holds:
//
//  1. Level: the chain's degradation level (chain.Degradation) is below
//     Rules.UnreadyAt (if zero, chain.L3). Rules.IgnoreLevel drops the rule.
//  2. Registrations: with Rules.Registrations, every instance the chain
//     keeps registered is held by at least one tier
//     (chain.Chain.RegistrationTiers): clients can find it.
//  3. Services: each of Rules.Services has a view in the chain (it has
//     been read or watched) that is served live by a tier that is up, or,
//     when it is stale (from the snapshot or from a tier that is down), is
//     younger than Rules.MaxStale (if zero, any age will do).
//  4. Check: Rules.Check, when set, returns nil.
//
// A not-ready answer lists every rule that failed, in this order.
//
// Caveat: readiness that depends on a shared registry takes a whole fleet
// out of rotation at once when that registry fails. Gate on level L3 only
// where an instance that cannot register must not take traffic, and set
// IgnoreLevel where readiness feeds a load balancer that should keep
// sending traffic during a registry outage.
//
// # Mutations
//
// The switches are off unless Config.Mutations is set. With Config.Token
// set, a mutation needs the header "Authorization: Bearer TOKEN" (compared
// in constant time); without a token, only callers on a loopback address
// may mutate. Mutations are POST only, logged, and answered with the
// chain's state after the change.
//
// A mutation a browser sends from another origin (another site's page
// posting to the admin port) is refused (403), by net/http's
// CrossOriginProtection: the status page's own buttons are same-origin,
// curl and regctl send no browser headers.
//
// Every refused mutation is logged once, at Warn, with the reason, the
// caller's address and the Host and Origin it sent.
//
// Caveat: behind a reverse proxy on the same host every caller looks like
// loopback: set a Token there.
//
// # Browsers
//
// The admin port is reachable from any web page the operator's browser
// shows (on loopback, through ssh -L), so the handler defends itself:
//
//   - It answers only requests whose Host header is an IP address or one
//     of Config.Hosts (if nil, "localhost"); any other is refused (403),
//     reads included. A page whose name an attacker made resolve to the
//     admin port (DNS rebinding) sends its own name as Host: it can
//     neither read the status nor mutate, although its requests come
//     from loopback and are same-origin to the browser. List the names
//     the handler is reached by in Config.Hosts.
//   - Every answer carries X-Frame-Options: DENY and a
//     Content-Security-Policy with frame-ancestors 'none' (no other page
//     can frame the status page and trick a click on its buttons),
//     default-src 'none' with only the page's own inline script and style
//     sheet allowed by hash, X-Content-Type-Options: nosniff,
//     Referrer-Policy: no-referrer and Cross-Origin-Resource-Policy:
//     same-origin.
//   - Mutations from another origin's page are refused (above).
//
// # The status page
//
// The page shows the degradation level and readiness at the top, then the
// tiers (health and since when), the services (source, age, instance count,
// held drop, rollback, last known good), the chain's own registrations and
// pending writes, the snapshot (age, services served from it) and the
// recent failovers and failbacks. It needs no external asset (CSS and the
// small script are inline) and refreshes itself every Config.Refresh (if
// zero, 2s) by fetching its own content again; without JavaScript a meta
// refresh does the same. When the handler stops answering, the last
// content stays, marked as not updated since then. With mutations enabled
// the page has buttons for them (freeze or unfreeze; per service, release
// when a drop is held or it is rolled back, roll back when it is stale or
// has fewer instances than its last known good state), and a token field
// when a Token is configured; the answer shows on the page, which
// refreshes at once.
//
// A Handler is safe for concurrent use.
package admin
