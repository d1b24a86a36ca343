package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/regchain/regchain/admin"
	"github.com/regchain/regchain/internal/safefile"
)

// More exit statuses, for the commands against a running process's admin
// handler.
const (
	exitNotReady = 3 // status: the process answered and is not ready
	exitRefused  = 4 // freeze/unfreeze/release/rollback: the handler refused (disabled, not loopback, wrong token)
)

// exitError carries an exit status other than exitFail.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// errNotReady is how status reports a process that is not ready; the
// status itself has been printed.
var errNotReady = errors.New("the process is not ready")

// adminURL returns the admin handler's URL for endpoint, from what the
// operator typed: "http://host:9901/admin/", "host:9901/admin", ...
func adminURL(raw, endpoint string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", usagef("%q is not an admin URL (want http://HOST:PORT/PATH/, where the admin handler is mounted)", raw)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.Path += endpoint
	u.RawQuery = ""
	return u.String(), nil
}

// remote runs status, freeze, unfreeze, release and rollback against the
// admin handler at args[0].
func (c *cli) remote(ctx context.Context, cmd string, args []string) error {
	want := 1
	if cmd == "release" || cmd == "rollback" {
		want = 2
	}
	if len(args) != want {
		if want == 2 {
			return usagef("%s takes the admin URL and a service name, got %d arguments", cmd, len(args))
		}
		return usagef("%s takes the admin URL, got %d arguments", cmd, len(args))
	}
	u, err := adminURL(args[0], cmd)
	if err != nil {
		return err
	}
	if want == 2 {
		u += "?service=" + url.QueryEscape(args[1])
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	method := http.MethodPost
	if cmd == "status" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	if method == http.MethodPost {
		tok, err := c.adminToken()
		if err != nil {
			return err
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: unreachable: %w", cmd, u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", cmd, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		// The server's words, cleaned and bounded: it may be anything.
		if len(msg) > 1024 {
			msg = msg[:1024] + "..."
		}
		err := fmt.Errorf("%s %s: %s: %s", cmd, u, clean(resp.Status), clean(msg))
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return &exitError{exitRefused, fmt.Errorf("%w\n  hint: give the admin token: -token-file FILE, or $REGCTL_TOKEN", err)}
		case http.StatusForbidden:
			return &exitError{exitRefused, err}
		}
		return err
	}
	if cmd != "status" {
		var r admin.MutationResult
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("%s %s: unexpected answer: %w", cmd, u, err)
		}
		printf(c.stdout, "ok: %s", cmd)
		if r.Service != "" {
			printf(c.stdout, " %s", r.Service)
		}
		printf(c.stdout, " (frozen %v, level %v)\n", r.Frozen, r.Level)
		return nil
	}
	var r admin.Report
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("status %s: not an admin status answer: %w", u, err)
	}
	if c.opts.json {
		// Re-encoded, not copied: json.Marshal's output holds no control
		// character and no invalid UTF-8 (the server's may).
		var v any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err = dec.Decode(&v); err == nil {
			err = c.printJSON(v)
		}
	} else {
		err = c.printStatus(&r)
	}
	if err != nil {
		return err
	}
	if !r.Ready {
		return &exitError{exitNotReady, errNotReady}
	}
	return nil
}

// adminToken returns the bearer token of the admin commands: -token-file,
// -token, else $REGCTL_TOKEN.
func (c *cli) adminToken() (string, error) {
	switch f := c.opts.conn; {
	case f.tokenFile != "":
		b, err := safefile.ReadFile(f.tokenFile, 64<<10)
		if err != nil {
			return "", fmt.Errorf("-token-file: %w", err)
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
	case f.token != "":
		return f.token, nil
	}
	return os.Getenv("REGCTL_TOKEN"), nil
}

// printStatus writes the report for people.
func (c *cli) printStatus(r *admin.Report) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	ago := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return r.Now.Sub(*t).Round(100*time.Millisecond).String() + " ago"
	}
	secs := func(s float64) string {
		return (time.Duration(s * float64(time.Second))).Round(100 * time.Millisecond).String()
	}
	since := "start"
	if r.LevelSince != nil {
		since = ago(r.LevelSince)
	}
	printf(tw, "level\t%v: %s (since %s)\n", r.Level, r.LevelMeaning, since)
	for _, why := range r.LevelReasons {
		printf(tw, "\t- %s\n", why)
	}
	ready := "yes"
	if !r.Ready {
		ready = "no"
	}
	printf(tw, "ready\t%s\n", ready)
	for _, why := range r.NotReady {
		printf(tw, "\t- %s\n", why)
	}
	printf(tw, "frozen\t%v\nmutations\t%s\n", r.Frozen, r.Mutations)
	printf(tw, "snapshot\t%d services, %d served from it, saved %s\n\n", r.Snapshot.Services, r.Snapshot.Serving, ago(r.Snapshot.LastSave))
	printf(tw, "TIER\tHEALTH\tSINCE\tFAILURES\tPENDING\tLAST ERROR\n")
	for _, t := range r.Tiers {
		h := "UP"
		if !t.Up {
			h = "DOWN"
		}
		printf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", t.Name, h, ago(t.Since), t.Failures, t.Pending, orDash(t.LastError))
	}
	printf(tw, "\nSERVICE\tSOURCE\tINSTANCES\tAGE\tSTATE\tLAST GOOD\n")
	for _, s := range r.Services {
		var state []string
		if s.Stale {
			state = append(state, "stale")
		}
		if s.Held {
			state = append(state, fmt.Sprintf("held(drop to %d, %d reads)", s.HeldInstances, s.HeldReads))
		}
		if s.RolledBack {
			state = append(state, "rolled-back")
		}
		good := "-"
		if g := s.LastGood; g != nil {
			good = fmt.Sprintf("%d from %s", g.Instances, g.Source)
		}
		printf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", s.Name, s.Source, s.Instances, secs(s.AgeSeconds), orDash(strings.Join(state, ",")), good)
	}
	if len(r.Registrations) > 0 {
		printf(tw, "\nREGISTRATION\tLIVE\tHELD BY\tLAST ERROR\n")
		for _, g := range r.Registrations {
			printf(tw, "%s/%s\t%v\t%s\t%s\n", g.Service, g.ID, g.Live, orDash(strings.Join(g.Tiers, ",")), orDash(g.LastError))
		}
	}
	return tw.Flush()
}
