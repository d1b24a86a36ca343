package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/registry"
)

// snapshotTimeLayout is the time format of snapshot output.
const snapshotTimeLayout = time.RFC3339

// snapshot runs "snapshot dump FILE" and "snapshot inspect FILE".
func (c *cli) snapshot(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("snapshot needs a subcommand: dump FILE or inspect FILE")
	}
	sub := args[0]
	if sub != "dump" && sub != "inspect" {
		return usagef("unknown snapshot subcommand %q (want dump or inspect)", sub)
	}
	if len(args) != 2 {
		return usagef("snapshot %s takes one file, got %d arguments", sub, len(args)-1)
	}
	path := args[1]
	op := fmt.Sprintf("snapshot %s %s", sub, path)
	entries, skipped, err := c.loadSnapshot(ctx, path)
	if err != nil {
		return describe(ctx, op, err)
	}
	now := time.Now()
	if sub == "dump" {
		err = c.dump(entries, now)
	} else {
		err = c.inspect(path, entries, skipped, now)
	}
	if err == nil && skipped > 0 {
		what := fmt.Sprintf("%d entries", skipped)
		if skipped == 1 {
			what = "1 entry"
		}
		err = fmt.Errorf("%w: %s could not be decoded and skipped (named in the warnings above)", file.ErrCorrupt, what)
	}
	if err != nil {
		return describe(ctx, op, err)
	}
	return nil
}

// loadSnapshot reads every entry of the snapshot file at path, read-only.
// skipped counts the entries the store could not decode: it skips them,
// with a warning, so that the rest still serves a chain.
func (c *cli) loadSnapshot(ctx context.Context, path string) (entries []registry.SnapshotEntry, skipped int, err error) {
	s, err := file.OpenStore(path, file.Config{ReadOnly: true, Timeout: c.opts.timeout, Logger: c.log})
	if err != nil {
		return nil, 0, err
	}
	cctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	entries, damaged, err := s.Load(cctx)
	if cerr := s.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, 0, err
	}
	return entries, len(damaged), nil
}

// jsonEntry is a snapshot entry in snapshot dump -json output.
type jsonEntry struct {
	Service  string `json:"service"`
	Source   string `json:"source"`
	Revision int64  `json:"revision"`
	// Time is when the source last confirmed the state.
	Time time.Time `json:"time"`
	// Saved is when the entry was written.
	Saved      time.Time            `json:"saved"`
	AgeSeconds float64              `json:"age_seconds"`
	Instances  []*registry.Instance `json:"instances"`
	// LastGood is the service's last known good (non-empty) state, kept
	// beside an empty one; absent when the state is its own.
	LastGood *jsonLastGood `json:"last_good,omitempty"`
}

// jsonLastGood is a last known good state in snapshot dump -json output.
type jsonLastGood struct {
	Source    string               `json:"source"`
	Revision  int64                `json:"revision"`
	Time      time.Time            `json:"time"`
	Instances []*registry.Instance `json:"instances"`
}

func (c *cli) dump(entries []registry.SnapshotEntry, now time.Time) error {
	if c.opts.json {
		out := make([]jsonEntry, 0, len(entries))
		for _, e := range entries {
			ins := e.Update.Instances
			if ins == nil {
				ins = []*registry.Instance{}
			}
			je := jsonEntry{
				Service: e.Update.Service, Source: e.Update.Source, Revision: e.Update.Revision,
				Time: e.Update.Time, Saved: e.Saved, AgeSeconds: e.Age(now).Seconds(), Instances: ins,
			}
			if g := e.LastGood; g != nil {
				je.LastGood = &jsonLastGood{Source: g.Source, Revision: g.Revision, Time: g.Time, Instances: g.Instances}
			}
			out = append(out, je)
		}
		return c.printJSON(out)
	}
	for i, e := range entries {
		if i > 0 {
			fmt.Fprintln(c.stdout)
		}
		u := e.Update
		printf(c.stdout, "%s  source=%s revision=%d age=%s confirmed=%s saved=%s instances=%d\n",
			u.Service, orDash(u.Source), u.Revision, fmtAge(e.Age(now)),
			fmtTime(u.Time, snapshotTimeLayout), fmtTime(e.Saved, snapshotTimeLayout), len(u.Instances))
		if len(u.Instances) == 0 {
			fmt.Fprintln(c.stdout, "  (no instances: the service was authoritatively empty)")
		} else {
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			writeInstances(tw, "  ", u.Instances)
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		if g := e.LastGood; g != nil {
			printf(c.stdout, "  last known good: source=%s revision=%d confirmed=%s instances=%d\n",
				orDash(g.Source), g.Revision, fmtTime(g.Time, snapshotTimeLayout), len(g.Instances))
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			writeInstances(tw, "    ", g.Instances)
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// summary is what snapshot inspect reports.
type summary struct {
	File      string `json:"file"`
	Size      int64  `json:"size"`
	Schema    string `json:"schema"`
	Services  int    `json:"services"`
	Empty     int    `json:"empty_services"`
	Instances int    `json:"instances"`
	// LastGood counts the services that keep a last known good state
	// beside an empty one.
	LastGood int `json:"last_good_services"`
	// Skipped counts damaged entries, left out of the other numbers.
	Skipped int       `json:"skipped_entries"`
	Oldest  *entryRef `json:"oldest,omitempty"`
	Newest  *entryRef `json:"newest,omitempty"`
}

// entryRef names one entry of a summary.
type entryRef struct {
	Service    string    `json:"service"`
	Source     string    `json:"source"`
	Time       time.Time `json:"time"`
	AgeSeconds float64   `json:"age_seconds"`

	age time.Duration
}

func (c *cli) inspect(path string, entries []registry.SnapshotEntry, skipped int, now time.Time) error {
	s := summary{File: path, Schema: "ok", Services: len(entries), Skipped: skipped}
	if info, err := os.Stat(path); err == nil {
		s.Size = info.Size()
	}
	var oldest, newest registry.SnapshotEntry
	for i, e := range entries {
		s.Instances += len(e.Update.Instances)
		if len(e.Update.Instances) == 0 {
			s.Empty++
		}
		if e.LastGood != nil {
			s.LastGood++
		}
		if i == 0 || e.Age(now) > oldest.Age(now) {
			oldest = e
		}
		if i == 0 || e.Age(now) < newest.Age(now) {
			newest = e
		}
	}
	ref := func(e registry.SnapshotEntry) *entryRef {
		t := e.Update.Time
		if t.IsZero() {
			t = e.Saved
		}
		age := e.Age(now)
		return &entryRef{Service: e.Update.Service, Source: e.Update.Source, Time: t, AgeSeconds: age.Seconds(), age: age}
	}
	if len(entries) > 0 {
		s.Oldest, s.Newest = ref(oldest), ref(newest)
	}
	if c.opts.json {
		return c.printJSON(s)
	}
	w := c.stdout
	printf(w, "file:       %s (%d bytes)\n", s.File, s.Size)
	fmt.Fprintf(w, "schema:     %s\n", s.Schema)
	if skipped == 0 {
		fmt.Fprintln(w, "entries:    ok (checksums verified)")
	} else {
		fmt.Fprintf(w, "entries:    %d damaged, skipped\n", skipped)
	}
	fmt.Fprintf(w, "services:   %d (%d empty)\n", s.Services, s.Empty)
	fmt.Fprintf(w, "instances:  %d\n", s.Instances)
	fmt.Fprintf(w, "last good:  %d services keep their last known good state beside an empty one\n", s.LastGood)
	for _, r := range []struct {
		label string
		ref   *entryRef
	}{{"oldest", s.Oldest}, {"newest", s.Newest}} {
		if r.ref == nil {
			fmt.Fprintf(w, "%-11s -\n", r.label+":")
			continue
		}
		printf(w, "%-11s %s from %s, age %s (confirmed %s)\n", r.label+":", r.ref.Service, orDash(r.ref.Source),
			fmtAge(r.ref.age), fmtTime(r.ref.Time, snapshotTimeLayout))
	}
	return nil
}

// fmtAge rounds an age for reading: to 100 ms under a minute, else to the
// second. A negative age (a clock set back) is shown as it is.
func fmtAge(d time.Duration) string {
	switch {
	case d < 0:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
