package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/regchain/regchain/registry"
)

// watchTimeLayout is the time format of watch lines: to the millisecond, as
// updates can come in quick succession.
const watchTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// cli runs one command.
type cli struct {
	opts   *options
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

// dispatch checks the command's arguments and flags and runs it.
func (c *cli) dispatch(ctx context.Context, cmd string, args []string) error {
	if c.opts.set["count"] && cmd != "watch" {
		return usagef("-count applies to watch only")
	}
	switch cmd {
	case "list":
		if len(args) != 0 {
			return usagef("list takes no arguments, got %q", args)
		}
		return c.withRegistry(ctx, "list", c.list)
	case "get":
		if len(args) != 1 {
			return usagef("get takes one service name, got %d arguments", len(args))
		}
		return c.withRegistry(ctx, fmt.Sprintf("get %q", args[0]), func(ctx context.Context, reg registry.Registry, _ *target) error {
			return c.get(ctx, reg, args[0])
		})
	case "watch":
		if len(args) > 1 {
			return usagef("watch takes at most one service name, got %d arguments", len(args))
		}
		name := ""
		if len(args) == 1 {
			name = args[0]
		}
		op := "watch"
		if name != "" {
			op = fmt.Sprintf("watch %q", name)
		}
		return c.withRegistry(ctx, op, func(ctx context.Context, reg registry.Registry, _ *target) error {
			return c.watch(ctx, reg, name)
		})
	case "ping":
		if len(args) != 0 {
			return usagef("ping takes no arguments, got %q", args)
		}
		if c.opts.json {
			return usagef("-json does not apply to ping")
		}
		return c.withRegistry(ctx, "ping", c.ping)
	case "snapshot":
		return c.snapshot(ctx, args)
	case "mirror":
		return c.mirrorCmd(ctx, args)
	case "status", "freeze", "unfreeze", "release", "rollback": // remote.go
		return c.remote(ctx, cmd, args)
	case "register", "deregister": // repair.go
		return c.repair(ctx, cmd, args)
	}
	return usagef("unknown command %q (want list, get, watch, ping, snapshot, mirror, status, freeze, unfreeze, release, rollback, register or deregister)", cmd)
}

// withRegistry opens the -registry target, runs fn and closes it. Errors
// are described with op and the target.
func (c *cli) withRegistry(ctx context.Context, op string, fn func(context.Context, registry.Registry, *target) error) error {
	t, err := parseTarget(c.opts.registry)
	if err != nil {
		return err
	}
	if err := t.apply(c.opts.conn); err != nil {
		return err
	}
	op += " on " + t.String()
	reg, err := t.open(c.opts.timeout, c.log)
	if err != nil {
		return describe(ctx, op, err)
	}
	err = fn(ctx, reg, t)
	if cerr := reg.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return describe(ctx, op, err)
	}
	return nil
}

// call returns a ctx bounded by -timeout, for one call to the backend.
func (c *cli) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.timeout)
}

func (c *cli) list(ctx context.Context, reg registry.Registry, _ *target) error {
	cctx, cancel := c.call(ctx)
	defer cancel()
	names, err := reg.ListServices(cctx)
	if err != nil {
		return err
	}
	if c.opts.json {
		if names == nil {
			names = []string{}
		}
		return c.printJSON(names)
	}
	for _, n := range names {
		printf(c.stdout, "%s\n", n)
	}
	return nil
}

func (c *cli) get(ctx context.Context, reg registry.Registry, name string) error {
	cctx, cancel := c.call(ctx)
	defer cancel()
	ins, err := reg.GetService(cctx, name)
	if err != nil {
		return err
	}
	if c.opts.json {
		// registry.Instance's encoding is Kratos' ServiceInstance layout.
		return c.printJSON(ins)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	writeInstances(tw, "", ins)
	return tw.Flush()
}

func (c *cli) ping(ctx context.Context, reg registry.Registry, t *target) error {
	cctx, cancel := c.call(ctx)
	defer cancel()
	start := time.Now()
	var err error
	if p, ok := reg.(registry.Pinger); ok {
		err = p.Ping(cctx)
	} else {
		_, err = reg.ListServices(cctx)
	}
	if err != nil {
		return err
	}
	printf(c.stdout, "ok: %s answered in %v\n", t, time.Since(start).Round(time.Millisecond))
	return nil
}

// watch prints every Update until ctx is done (a normal end) or -count
// updates. Transient errors are reported on stderr; the watcher retries by
// itself.
func (c *cli) watch(ctx context.Context, reg registry.Registry, name string) error {
	w, err := reg.Watch(ctx, name)
	if err != nil {
		return err
	}
	defer w.Stop()
	for n := 0; c.opts.count == 0 || n < c.opts.count; {
		u, err := w.Next()
		switch {
		case ctx.Err() != nil:
			return nil // interrupted: the way a watch ends
		case errors.Is(err, registry.ErrStopped), errors.Is(err, registry.ErrClosed):
			return err
		case err != nil:
			fmt.Fprintf(c.stderr, "regctl: watch: %s: %v (retrying)\n", kind(err), err)
			continue
		}
		if err := c.printUpdate(u); err != nil {
			return err
		}
		n++
	}
	return nil
}

// jsonUpdate is an Update in watch -json output.
type jsonUpdate struct {
	Time      time.Time            `json:"time"`
	Service   string               `json:"service"`
	Source    string               `json:"source"`
	Revision  int64                `json:"revision"`
	Instances []*registry.Instance `json:"instances"`
}

func (c *cli) printUpdate(u *registry.Update) error {
	if c.opts.json {
		ins := u.Instances
		if ins == nil {
			ins = []*registry.Instance{}
		}
		b, err := json.Marshal(jsonUpdate{Time: u.Time, Service: u.Service, Source: u.Source, Revision: u.Revision, Instances: ins})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "%s\n", b)
		return err
	}
	ids := make([]string, len(u.Instances))
	for i, in := range u.Instances {
		ids[i] = in.ID
	}
	return printf(c.stdout, "%s service=%s source=%s revision=%d count=%d ids=%s\n",
		fmtTime(u.Time, watchTimeLayout), u.Service, u.Source, u.Revision, len(u.Instances), strings.Join(ids, ","))
}

// printJSON writes v indented, with a final newline.
func (c *cli) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s\n", b)
	return err
}

// writeInstances writes a table of instances, each line prefixed by indent.
func writeInstances(w io.Writer, indent string, ins []*registry.Instance) {
	printf(w, "%sID\tVERSION\tENDPOINTS\tMETADATA\n", indent)
	for _, in := range ins {
		printf(w, "%s%s\t%s\t%s\t%s\n", indent, in.ID, orDash(in.Version), orDash(strings.Join(in.Endpoints, ",")), fmtMetadata(in.Metadata))
	}
}

// fmtMetadata returns "k=v k2=v2", keys sorted, odd values quoted.
func fmtMetadata(md map[string]string) string {
	if len(md) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(md))
	for _, k := range slices.Sorted(maps.Keys(md)) {
		parts = append(parts, quoteIfNeeded(k)+"="+quoteIfNeeded(md[k]))
	}
	return strings.Join(parts, " ")
}

// quoteIfNeeded quotes s when it is empty or holds spaces, quotes, "=" or
// unprintable runes, so that every "k=v" reads back unambiguously.
func quoteIfNeeded(s string) string {
	odd := func(r rune) bool { return r == ' ' || r == '"' || r == '=' || !strconv.IsPrint(r) }
	if s == "" || strings.ContainsFunc(s, odd) {
		return strconv.Quote(s)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fmtTime formats t in local time, "-" for the zero time.
func fmtTime(t time.Time, layout string) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(layout)
}
