package admin

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// pageData is what the status page template renders.
type pageData struct {
	Report
	Title       string
	RefreshMS   int64
	RefreshSecs int64    // for the meta refresh, at least 1
	RefreshText string   // "2.0s"
	Rules       []string // the readiness rules in effect, for people
}

// page serves the status page, or with ?fragment=1 only its content (what
// the page's script fetches to refresh itself).
func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	now := h.now()
	d := pageData{Report: h.report(h.c.Status(), now), Title: h.cfg.Title, RefreshMS: h.cfg.Refresh.Milliseconds(),
		RefreshSecs: max(1, int64((h.cfg.Refresh+time.Second-1)/time.Second)), RefreshText: human(h.cfg.Refresh), Rules: h.cfg.Rules.describe()}
	name := "page"
	if r.URL.Query().Get("fragment") != "" {
		name = "content"
	}
	var buf bytes.Buffer
	if err := pageTmpl.ExecuteTemplate(&buf, name, d); err != nil {
		writeError(w, http.StatusInternalServerError, "render: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// describe lists the readiness rules in effect.
func (r Rules) describe() []string {
	var out []string
	if !r.IgnoreLevel {
		at := r.UnreadyAt
		if at == 0 {
			at = 3
		}
		out = append(out, fmt.Sprintf("level below %v", at))
	}
	if r.Registrations {
		out = append(out, "every own registration held by a tier")
	}
	if len(r.Services) > 0 {
		s := "served: " + strings.Join(r.Services, ", ")
		if r.MaxStale > 0 {
			s += fmt.Sprintf(" (stale at most %v)", r.MaxStale)
		}
		out = append(out, s)
	}
	if r.Check != nil {
		out = append(out, "custom check")
	}
	return out
}

// human formats a duration for people: 850ms, 4.2s, 3m12s, 2h05m, 3d04h.
func human(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

var funcs = template.FuncMap{
	// ago renders "12s ago" for a time, "—" when unknown.
	"ago": func(now time.Time, t *time.Time) string {
		if t == nil {
			return "—"
		}
		return human(now.Sub(*t)) + " ago"
	},
	"secs": func(s float64) string { return human(time.Duration(s * float64(time.Second))) },
	"stamp": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"join":  strings.Join,
	// rev returns the switches newest first.
	"rev": func(s []Switch) []Switch {
		out := make([]Switch, len(s))
		for i, v := range s {
			out[len(s)-1-i] = v
		}
		return out
	},
}

var pageTmpl = template.Must(template.New("page").Funcs(funcs).Parse(pageHTML))

// The page's style sheet and script, inline and constant: the
// Content-Security-Policy allows exactly these two, by their SHA-256, and
// nothing else (no inline style attribute, no other script).
const pageCSS = `:root{--ok:#1a7f37;--l1:#9a6700;--l2:#bc4c00;--l3:#cf222e;--mute:#57606a;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;background:#fff}
header{display:flex;align-items:center;gap:16px;flex-wrap:wrap;padding:14px 24px;border-bottom:1px solid var(--line);background:var(--bg)}
header h1{font-size:18px;margin:0 12px 0 0}
main{padding:8px 24px 24px}
.level{display:flex;align-items:center;gap:12px;padding:12px 16px;margin:12px 0;border-radius:8px;color:#fff}
.level b{font-size:28px;line-height:1}
.level .m{font-size:16px;font-weight:600}
.level small{display:block;opacity:.9}
.L0{background:var(--ok)}.L1{background:var(--l1)}.L2{background:var(--l2)}.L3{background:var(--l3)}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;border:1px solid transparent;white-space:nowrap}
.up{background:#dafbe1;color:var(--ok);border-color:#aceebb}
.down{background:#ffebe9;color:var(--l3);border-color:#ffcecb}
.warn{background:#fff8c5;color:var(--l1);border-color:#f5e0a0}
.info{background:#ddf4ff;color:#0969da;border-color:#b6e3ff}
.off{background:#eaeef2;color:var(--mute)}
h2{font-size:15px;margin:22px 0 6px;display:flex;gap:8px;align-items:baseline}
h2 span{font-weight:400;color:var(--mute);font-size:13px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--mute);font-weight:600;background:var(--bg)}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fff5f5}
tr.stale td{background:#fffbea}
.mute{color:var(--mute)}
.err{color:var(--l3);font-size:12px;max-width:420px;word-break:break-word}
ul.reasons{margin:0;padding-left:18px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:8px}
.grid.two{grid-template-columns:1fr 1fr}.grid.top{margin-top:10px}
.pills{margin-left:auto;display:flex;gap:8px;flex-wrap:wrap}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px}
.card b{display:block;font-size:18px}
.card span{color:var(--mute);font-size:12px}
#conn{margin:10px 0;padding:8px 12px;border-radius:6px;background:#ffebe9;color:var(--l3);font-weight:600}
button{font:inherit;font-size:12px;font-weight:600;padding:3px 10px;border-radius:6px;border:1px solid var(--line);background:#fff;cursor:pointer}
button:hover{background:var(--bg)}
button.danger{color:var(--l3);border-color:#ffcecb}
button:disabled{opacity:.5;cursor:default}
.tok{margin-left:auto;font-size:12px;color:var(--mute)}
.tok input{font:inherit;padding:2px 6px;border:1px solid var(--line);border-radius:4px}
#msg{margin:10px 0;padding:8px 12px;border-radius:6px;font-weight:600}
#msg.ok{background:#dafbe1;color:var(--ok)}#msg.bad{background:#ffebe9;color:var(--l3)}
footer{padding:12px 24px;color:var(--mute);font-size:12px;border-top:1px solid var(--line)}
code{font-size:12px;background:var(--bg);padding:1px 4px;border-radius:4px}
`

const pageJS = `(function(){
  var every=+document.body.getAttribute('data-refresh'), lastOK=new Date(), conn=document.getElementById('conn'), content=document.getElementById('content'), msg=document.getElementById('msg');
  function refresh(){
    return fetch(location.pathname+'?fragment=1',{cache:'no-store'}).then(function(r){
      if(!r.ok){throw new Error('HTTP '+r.status)}return r.text();
    }).then(function(t){
      content.innerHTML=t;lastOK=new Date();conn.hidden=true;
      var l=content.querySelector('[data-title]');if(l){document.title=l.getAttribute('data-title')}
    }).catch(function(e){
      conn.hidden=false;conn.textContent='Not updated since '+lastOK.toLocaleTimeString()+' ('+e.message+'): showing the last content.';
    });
  }
  function tick(){refresh().finally(function(){setTimeout(tick,every)})}
  setTimeout(tick,every);
  function say(ok,text){msg.hidden=false;msg.className=ok?'ok':'bad';msg.textContent=text}
  document.addEventListener('click',function(e){
    var b=e.target.closest('button[data-action]');if(!b){return}
    var a=b.getAttribute('data-action'),s=b.getAttribute('data-service'),h={},tok=document.getElementById('token');
    if(tok&&tok.value){h['Authorization']='Bearer '+tok.value}
    b.disabled=true;
    fetch(a+(s?'?service='+encodeURIComponent(s):''),{method:'POST',headers:h}).then(function(r){
      return r.json().then(function(j){say(r.ok,r.ok?('Done: '+a+(s?' '+s:'')):('Refused: '+j.error))});
    }).catch(function(e){say(false,a+' failed: '+e.message)}).finally(refresh);
  });
})();
`

// contentSecurityPolicy is every answer's Content-Security-Policy.
var contentSecurityPolicy = "default-src 'none'; script-src '" + sha256b64(pageJS) + "'; style-src '" + sha256b64(pageCSS) +
	"'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func sha256b64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

const pageHTML = `{{define "page"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Level}} · {{.Title}}</title>
<noscript><meta http-equiv="refresh" content="{{.RefreshSecs}}"></noscript>
<style>` + pageCSS + `</style></head>
<body data-refresh="{{.RefreshMS}}">
<header><h1>{{.Title}}</h1><span class="mute">regchain admin · refreshes every {{.RefreshText}}</span>
{{if eq .Mutations "token"}}<label class="tok">token <input id="token" type="password" autocomplete="off" size="18"></label>{{end}}</header>
<main><div id="conn" hidden></div><div id="msg" hidden></div><div id="content">{{template "content" .}}</div></main>
<footer>JSON: <code>status</code> · probes: <code>readyz</code> <code>livez</code> · mutations: {{.Mutations}}{{if ne .Mutations "off"}} (<code>regctl freeze|unfreeze|release|rollback URL</code>){{end}}</footer>
<script>` + pageJS + `</script>
</body></html>{{end}}

{{define "content"}}{{$now := .Now}}
<div class="level {{.Level}}" data-title="{{.Level}} · {{.Title}}">
  <b>{{.Level}}</b>
  <div><div class="m">{{.LevelMeaning}}</div>
  <small>since {{if .LevelSince}}{{ago $now .LevelSince}}{{else}}start{{end}} · updated {{clock .Now}} UTC</small></div>
  <div class="pills">
    {{if .Ready}}<span class="pill up">READY</span>{{else}}<span class="pill down">NOT READY</span>{{end}}
    {{if .Live}}<span class="pill up">LIVE</span>{{else}}<span class="pill down">CLOSED</span>{{end}}
    {{if .Frozen}}<span class="pill warn">FROZEN</span>{{end}}
    {{if ne .Mutations "off"}}{{if .Frozen}}<button data-action="unfreeze">Unfreeze</button>{{else}}<button class="danger" data-action="freeze">Freeze on last known good</button>{{end}}{{end}}
  </div>
</div>
{{if or .LevelReasons .NotReady}}<div class="grid two">
{{if .LevelReasons}}<div class="card"><span>Why {{.Level}}</span><ul class="reasons">{{range .LevelReasons}}<li>{{.}}</li>{{end}}</ul></div>{{end}}
{{if .NotReady}}<div class="card"><span>Not ready because</span><ul class="reasons">{{range .NotReady}}<li>{{.}}</li>{{end}}</ul></div>{{end}}
</div>{{end}}

<div class="grid top">
<div class="card"><b>{{len .Services}}</b><span>services</span></div>
<div class="card"><b>{{.Snapshot.Serving}}</b><span>served from snapshot</span></div>
<div class="card"><b>{{.PendingRegistrations}}</b><span>pending registrations</span></div>
<div class="card"><b>{{.Guard.Held}}</b><span>drops held (total)</span></div>
<div class="card"><b>{{len .Recent}}</b><span>recent source switches</span></div>
</div>

<h2>Tiers <span>in chain order</span></h2>
<table><thead><tr><th>Tier</th><th>Health</th><th>Since</th><th>Role</th><th class="n">Failures</th><th>Last OK</th><th class="n">Pending</th><th>Last error</th></tr></thead><tbody>
{{range .Tiers}}<tr class="{{if not .Up}}bad{{end}}" data-tier="{{.Name}}"><td><b>{{.Name}}</b></td>
<td>{{if .Up}}{{if .Stable}}<span class="pill up">UP</span>{{else}}<span class="pill warn">UP · settling</span>{{end}}{{else}}<span class="pill down">DOWN</span>{{end}}</td>
<td title="{{stamp .Since}}">{{if .Since}}{{ago $now .Since}}{{else}}<span class="mute">start</span>{{end}}</td>
<td>{{if .ReadOnly}}read-only{{else}}read/write{{end}}</td>
<td class="n">{{.Failures}}</td><td title="{{stamp .LastOK}}">{{ago $now .LastOK}}</td><td class="n">{{.Pending}}</td>
<td class="err">{{.LastError}}</td></tr>{{end}}
</tbody></table>

<h2>Services <span>source, age and instances served</span></h2>
{{if .Services}}<table><thead><tr><th>Service</th><th>Source</th><th class="n">Instances</th><th>Age</th><th>Guard</th><th>Last known good</th>{{if ne .Mutations "off"}}<th>Act</th>{{end}}</tr></thead><tbody>
{{range .Services}}<tr class="{{if .Stale}}stale{{end}}" data-service="{{.Name}}"><td><b>{{.Name}}</b></td>
<td><span class="pill {{if eq .Source "snapshot"}}warn{{else if .Stale}}down{{else}}info{{end}}">{{.Source}}</span>{{if .Stale}} <span class="mute">stale</span>{{end}}{{if .RolledBack}} <span class="pill warn">ROLLED BACK</span>{{end}}</td>
<td class="n">{{.Instances}}</td><td title="{{stamp .Time}}">{{secs .AgeSeconds}}</td>
<td>{{if .Held}}<span class="pill down">HELD</span> drop to {{.HeldInstances}} since {{ago $now .HeldSince}}, {{.HeldReads}} re-reads{{else}}<span class="mute">—</span>{{end}}</td>
<td>{{with .LastGood}}{{.Instances}} from {{.Source}}, {{secs .AgeSeconds}} old{{else}}<span class="mute">none</span>{{end}}</td>
{{if ne $.Mutations "off"}}<td>{{if or .Held .RolledBack}}<button data-action="release" data-service="{{.Name}}">Release</button>{{else if and .LastGood (or .Stale (lt .Instances .LastGood.Instances))}}<button data-action="rollback" data-service="{{.Name}}" title="serve its last known good state">Roll back</button>{{end}}</td>{{end}}</tr>{{end}}
</tbody></table>{{else}}<p class="mute">No service read or watched yet.</p>{{end}}

<h2>Own registrations <span>{{.PendingRegistrations}} pending</span></h2>
{{if .Registrations}}<table><thead><tr><th>Instance</th><th>State</th><th>Held by</th><th>Since</th><th>Endpoints</th><th>Last error</th></tr></thead><tbody>
{{range .Registrations}}<tr class="{{if not .Tiers}}bad{{end}}" data-registration="{{.Service}}/{{.ID}}"><td><b>{{.Service}}</b>/{{.ID}}</td>
<td>{{if .Live}}<span class="pill up">LIVE</span>{{else if .Tiers}}<span class="pill warn">PARTIAL</span>{{else}}<span class="pill down">NOWHERE</span>{{end}}</td>
<td>{{if .Tiers}}{{join .Tiers ", "}}{{else}}<span class="mute">no tier</span>{{end}}</td>
<td title="{{stamp .Since}}">{{ago $now .Since}}</td><td class="mute">{{join .Endpoints " "}}</td><td class="err">{{.LastError}}{{if .Attempts}} ({{.Attempts}} attempts){{end}}</td></tr>{{end}}
</tbody></table>{{else}}<p class="mute">This process registers nothing through the chain.</p>{{end}}

<h2>Snapshot</h2>
{{if .Snapshot.Configured}}<div class="grid">
<div class="card"><b>{{.Snapshot.Services}}</b><span>services held</span></div>
<div class="card"><b>{{.Snapshot.Serving}}</b><span>served from it{{if .Snapshot.Serving}}, oldest {{secs .Snapshot.ServedAgeSeconds}}{{end}}</span></div>
<div class="card"><b>{{if .Snapshot.LastSave}}{{ago $now .Snapshot.LastSave}}{{else}}never{{end}}</b><span>last saved</span></div>
<div class="card"><b>{{.Snapshot.Commits}} / {{.Snapshot.Errors}}</b><span>saves / failed</span></div>
</div>{{if .Snapshot.LastError}}<p class="err">{{.Snapshot.LastError}}</p>{{end}}
{{else}}<p class="mute">No snapshot store configured: the chain falls back to the states it saw in this process{{if .Snapshot.Serving}} ({{.Snapshot.Serving}} served from them){{end}}.</p>{{end}}

<h2>Recent failovers and failbacks <span>newest first</span></h2>
{{if .Recent}}<table><thead><tr><th>When</th><th>Service</th><th>Change</th><th>Kind</th></tr></thead><tbody>
{{range rev .Recent}}<tr><td>{{clock .Time}}</td><td>{{.Service}}</td><td>{{.From}} → {{.To}}</td><td>{{if .Failback}}<span class="pill up">failback</span>{{else}}<span class="pill down">failover</span>{{end}}</td></tr>{{end}}
</tbody></table>{{else}}<p class="mute">None since the chain started.</p>{{end}}

<h2>Guard <span>empty-push protection since start</span></h2>
<p>held {{.Guard.Held}} · confirmed {{.Guard.Confirmed}} · discarded {{.Guard.Discarded}} · released {{.Guard.Released}} · rollbacks {{.Guard.Rollbacks}}</p>
<p class="mute">Ready when: {{if .Rules}}{{join .Rules "; "}}{{else}}always{{end}}.</p>
{{end}}`
