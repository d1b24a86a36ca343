package nearest_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/locality/nearest"
)

// step is one action on an endpoint and the state expected after it.
type step struct {
	wait    time.Duration // fake time to let pass first
	report  string        // "ok", "fail" or "" (none)
	ejected bool
	ejects  int // Ejections after the step
}

func runSteps(t *testing.T, cfg nearest.Ejection, steps []step) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		e := nearest.NewTracker(cfg).Endpoint("svc|grpc://10.0.0.1:1")
		for i, s := range steps {
			time.Sleep(s.wait)
			switch s.report {
			case "ok":
				e.Report(false)
			case "fail":
				e.Report(true)
			}
			st := e.State(time.Now())
			if st.Ejected != s.ejected || st.Ejections != s.ejects || e.Available(time.Now()) == s.ejected {
				t.Fatalf("step %d (%+v): state %+v, want ejected=%v ejections=%d", i, s, st, s.ejected, s.ejects)
			}
		}
	})
}

func TestEjectionDefaults(t *testing.T) {
	runSteps(t, nearest.Ejection{}, []step{
		{report: "fail"}, {report: "fail"},
		{report: "ok"}, // a success resets the count
		{report: "fail"}, {report: "fail"},
		{report: "fail", ejected: true, ejects: 1}, // third in a row: 5s
		{report: "ok", ejected: true, ejects: 1},   // in flight before the ejection: no news
		{report: "fail", ejected: true, ejects: 1}, // nor does a late failure extend it
		{wait: 5*time.Second - time.Nanosecond, ejected: true, ejects: 1},
		{wait: time.Nanosecond, ejects: 1},                                 // re-admitted, on probation
		{report: "fail", ejected: true, ejects: 2},                         // one failure on probation: 10s
		{wait: 10 * time.Second, ejects: 2},                                //
		{report: "fail", ejected: true, ejects: 3},                         // 20s
		{wait: 20 * time.Second, report: "fail", ejected: true, ejects: 4}, // 40s
		{wait: 40 * time.Second, report: "fail", ejected: true, ejects: 5}, // 80s capped at 60s
		{wait: 60*time.Second - time.Nanosecond, ejected: true, ejects: 5},
		{wait: time.Nanosecond, report: "fail", ejected: true, ejects: 6}, // still 60s
		{wait: 60 * time.Second, report: "ok"},                            // answered: probation over
		{report: "fail"}, {report: "fail"},
		{report: "fail", ejected: true, ejects: 1}, // back to three failures and 5s
		{wait: 5 * time.Second, ejects: 1},
	})
}

func TestEjectionSettings(t *testing.T) {
	t.Run("never", func(t *testing.T) {
		steps := make([]step, 20)
		for i := range steps {
			steps[i] = step{report: "fail"}
		}
		runSteps(t, nearest.Ejection{ConsecutiveFailures: -1}, steps)
	})
	t.Run("one failure, max below base", func(t *testing.T) {
		runSteps(t, nearest.Ejection{ConsecutiveFailures: 1, BaseTime: time.Second, MaxTime: time.Millisecond}, []step{
			{report: "fail", ejected: true, ejects: 1},
			{wait: time.Second, report: "fail", ejected: true, ejects: 2}, // max raised to base: 1s again
			{wait: time.Second, ejects: 2},
		})
	})
}

func TestTrackerKeys(t *testing.T) {
	tr := nearest.NewTracker(nearest.Ejection{ConsecutiveFailures: 1})
	a, b := tr.Endpoint("a"), tr.Endpoint("b")
	if tr.Endpoint("a") != a || a == b || a.Key() != "a" {
		t.Fatal("Endpoint does not give one Endpoint per key")
	}
	b.Report(true)
	if got := tr.Ejected(time.Now()); len(got) != 1 || got[0] != "b" {
		t.Fatalf("Ejected = %v, want [b]", got)
	}
}

// TestTrackerForgets: idle endpoints that are not ejected are dropped once
// the tracker has grown; ejected and recently used ones stay.
func TestTrackerForgets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := nearest.NewTracker(nearest.Ejection{ConsecutiveFailures: 1, BaseTime: time.Hour, MaxTime: time.Hour})
		old := tr.Endpoint("old")
		ejected := tr.Endpoint("ejected")
		for i := range 1022 {
			tr.Endpoint(string(rune('a'+i%26)) + time.Duration(i).String())
		}
		time.Sleep(time.Hour + 10*time.Minute + time.Second)
		ejected.Report(true)
		tr.Endpoint("trigger") // the 1025th: sweeps
		if tr.Endpoint("old") == old {
			t.Error("an idle endpoint was kept")
		}
		if tr.Endpoint("ejected") != ejected {
			t.Error("an ejected endpoint was forgotten")
		}
	})
}

func TestTrackerForget(t *testing.T) {
	tr := nearest.NewTracker(nearest.Ejection{ConsecutiveFailures: 1})
	a, b := tr.Endpoint("svc|a"), tr.Endpoint("other|b")
	a.Report(true)
	tr.Forget("svc|")
	if tr.Endpoint("svc|a") == a || tr.Endpoint("other|b") != b {
		t.Fatal("Forget dropped the wrong endpoints")
	}
	if got := tr.Ejected(time.Now()); len(got) != 0 {
		t.Fatalf("Ejected after Forget = %v", got)
	}
}

// TestFailurePercentage: an endpoint failing every other call never
// reaches three in a row, but is ejected once a window with enough calls
// ends at the failure percentage; a window with too few calls, below the
// percentage, or judged too late ejects nothing.
func TestFailurePercentage(t *testing.T) {
	cfg := nearest.Ejection{FailurePercentage: 40, RequestVolume: 4, Interval: time.Second, BaseTime: time.Minute}
	report := func(e *nearest.Endpoint, outcomes string) {
		for _, c := range outcomes {
			e.Report(c == 'x')
			time.Sleep(time.Millisecond)
		}
	}
	tests := []struct {
		name    string
		window  string        // outcomes within the first window: x failed, . answered
		wait    time.Duration // after them, before the next outcome
		ejected bool
	}{
		{"half failed", "x.x.x.", time.Second, true},
		{"at the percentage", "xx...", time.Second, true},
		{"below it", "x....", time.Second, false},
		{"too few calls", "x.x", time.Second, false},
		{"judged more than an interval late", "x.x.x.", 2 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := nearest.NewTracker(cfg).Endpoint("svc|a")
				report(e, tt.window)
				if !e.Available(time.Now()) {
					t.Fatal("ejected within the window")
				}
				time.Sleep(tt.wait - time.Duration(len(tt.window))*time.Millisecond)
				e.Report(false) // the first outcome after the window judges it
				if got := !e.Available(time.Now()); got != tt.ejected {
					t.Fatalf("ejected = %v, want %v (state %+v)", got, tt.ejected, e.State(time.Now()))
				}
			})
		})
	}
	t.Run("off", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			off := cfg
			off.FailurePercentage = -1
			e := nearest.NewTracker(off).Endpoint("svc|a")
			report(e, "x.x.x.x.x.")
			time.Sleep(time.Second)
			e.Report(false)
			if !e.Available(time.Now()) {
				t.Fatal("ejected with the failure percentage off")
			}
		})
	})
}

// TestSteady: a Tracker is steady while none of its endpoints is ejected
// or on probation, again once the probe answered or the endpoint is
// forgotten.
func TestSteady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := nearest.NewTracker(nearest.Ejection{ConsecutiveFailures: 1, BaseTime: time.Second})
		a, b := tr.Endpoint("svc|a"), tr.Endpoint("svc|b")
		if !tr.Steady() {
			t.Fatal("new tracker not steady")
		}
		a.Report(true)
		b.Report(true)
		if tr.Steady() {
			t.Fatal("steady with two endpoints ejected")
		}
		time.Sleep(time.Second)
		a.Report(false) // a's probe answered
		if tr.Steady() {
			t.Fatal("steady with b on probation")
		}
		tr.Forget("svc|b")
		if !tr.Steady() {
			t.Fatal("not steady once b is forgotten")
		}
	})
}

// TestReadmit: Readmit ends an ejection at once, on probation: the next
// failure ejects for twice as long; a success ends the probation.
func TestReadmit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := nearest.NewTracker(nearest.Ejection{ConsecutiveFailures: 1, BaseTime: time.Minute, MaxTime: time.Hour}).Endpoint("svc|a")
		e.Readmit() // not ejected: nothing to do
		if st := e.State(time.Now()); st.Ejected || st.OnProbation {
			t.Fatalf("Readmit of a healthy endpoint: %+v", st)
		}
		e.Report(true)
		e.Readmit()
		if st := e.State(time.Now()); st.Ejected || !st.OnProbation || st.Ejections != 1 {
			t.Fatalf("after Readmit: %+v, want on probation", st)
		}
		e.Report(true)
		if st := e.State(time.Now()); !st.Ejected || !st.Until.Equal(time.Now().Add(2*time.Minute)) {
			t.Fatalf("failed on probation: %+v, want ejected for 2m", st)
		}
		e.Readmit()
		e.Report(false)
		if st := e.State(time.Now()); st.Ejected || st.OnProbation || st.Ejections != 0 {
			t.Fatalf("answered on probation: %+v", st)
		}
	})
}
