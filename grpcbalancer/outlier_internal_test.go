package grpcbalancer

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regchain/regchain/locality"
)

func TestFailedClassifies(t *testing.T) {
	tests := []struct {
		name     string
		di       balancer.DoneInfo
		fail, ok bool
	}{
		{"success", balancer.DoneInfo{BytesReceived: true}, false, true},
		{"never sent (zero DoneInfo)", balancer.DoneInfo{}, false, false},
		{"unavailable", balancer.DoneInfo{Err: status.Error(codes.Unavailable, "")}, true, true},
		{"deadline", balancer.DoneInfo{Err: status.Error(codes.DeadlineExceeded, "")}, true, true},
		{"internal", balancer.DoneInfo{Err: status.Error(codes.Internal, ""), BytesReceived: true}, true, true},
		{"data loss", balancer.DoneInfo{Err: status.Error(codes.DataLoss, ""), BytesReceived: true}, true, true},
		{"cancelled by the client", balancer.DoneInfo{Err: status.Error(codes.Canceled, ""), BytesReceived: true}, false, false},
		{"application error", balancer.DoneInfo{Err: status.Error(codes.NotFound, ""), BytesReceived: true}, false, true},
		{"application error, nothing received", balancer.DoneInfo{Err: status.Error(codes.InvalidArgument, "")}, false, false},
		{"plain error", balancer.DoneInfo{Err: errors.New("x")}, false, false},
	}
	for _, tt := range tests {
		if fail, ok := failed(tt.di); fail != tt.fail || ok != tt.ok {
			t.Errorf("%s: failed = %v, %v; want %v, %v", tt.name, fail, ok, tt.fail, tt.ok)
		}
	}
}

func TestRecordConsecutive(t *testing.T) {
	var e endpoint
	fail := balancer.DoneInfo{Err: status.Error(codes.Unavailable, "")}
	ok := balancer.DoneInfo{BytesReceived: true}
	var fired []int
	for i, di := range []balancer.DoneInfo{fail, fail, ok, fail, fail, fail, fail, {}, fail} {
		if e.record(di, 3) {
			fired = append(fired, i)
		}
	}
	if fmt.Sprint(fired) != "[5]" {
		t.Errorf("limit reached at calls %v, want [5] only (once per run of failures; a success resets, a call never sent does not)", fired)
	}
	if e.calls.Load() != 8 || e.failures.Load() != 7 {
		t.Errorf("calls %d failures %d, want 8 and 7", e.calls.Load(), e.failures.Load())
	}
}

// The ejection rules on a clock of the test's: backoff by multiplier, its
// cap, its decay, the max ejection percent and the failure rate.
func TestEjectionRules(t *testing.T) {
	cfg, err := (&OutlierDetection{BaseEjectionTime: Duration(10 * time.Second), MaxEjectionTime: Duration(25 * time.Second),
		MaxEjectionPercent: 50, RequestVolume: 4, FailurePercentage: 50}).resolve()
	if err != nil {
		t.Fatal(err)
	}
	x := ejection{cfg: cfg}
	t0 := time.Unix(1000, 0)
	a, b, c, d := &endpoint{addr: "a"}, &endpoint{addr: "b"}, &endpoint{addr: "c"}, &endpoint{addr: "d"}
	eps := []*endpoint{a, b, c, d}

	// Max ejection percent: 2 of 4 may go, not 3.
	if !x.eject(a, eps, t0) || !x.eject(b, eps, t0) || x.eject(c, eps, t0) {
		t.Fatalf("ejections of a, b, c: want true, true, false; ejected %v %v %v", a.ejected, b.ejected, c.ejected)
	}
	if x.eject(a, eps, t0) {
		t.Error("an ejected endpoint was ejected again")
	}
	// First ejection: base time.
	if ch, next := x.readmit(eps, t0.Add(9*time.Second)); ch || !next.Equal(t0.Add(10*time.Second)) {
		t.Errorf("at 9s: readmitted %v, next %v; want none, next at 10s", ch, next.Sub(t0))
	}
	if ch, next := x.readmit(eps, t0.Add(10*time.Second)); !ch || a.ejected || b.ejected || !next.IsZero() {
		t.Errorf("at 10s: readmitted %v (a %v b %v), next %v; want both back", ch, a.ejected, b.ejected, next)
	}
	// Second ejection right away: twice as long; third: capped at 25s.
	t1 := t0.Add(10 * time.Second)
	x.eject(a, eps, t1)
	if u := x.until(a); !u.Equal(t1.Add(20 * time.Second)) {
		t.Errorf("second ejection ends after %v, want 20s", u.Sub(t1))
	}
	x.readmit(eps, t1.Add(20*time.Second))
	t2 := t1.Add(20 * time.Second)
	x.eject(a, eps, t2)
	if u := x.until(a); !u.Equal(t2.Add(25 * time.Second)) {
		t.Errorf("third ejection ends after %v, want the 25s cap", u.Sub(t2))
	}
	x.readmit(eps, t2.Add(25*time.Second))
	// Decay: one step per interval spent admitted.
	if a.multiplier != 3 {
		t.Fatalf("multiplier %d, want 3", a.multiplier)
	}
	for i := range 2 {
		x.interval(eps, t2.Add(time.Duration(26+i)*time.Second))
	}
	if a.multiplier != 1 {
		t.Errorf("multiplier after two intervals %d, want 1", a.multiplier)
	}

	// Failure rate: c had 4 calls, 2 failed (50 %): ejected; d had 3 calls,
	// all failed, below the request volume: not.
	c.calls.Store(4)
	c.failures.Store(2)
	d.calls.Store(3)
	d.failures.Store(3)
	got := x.interval(eps, t2.Add(30*time.Second))
	if len(got) != 1 || got[0] != c || !c.ejected || d.ejected {
		t.Errorf("failure-rate ejections %v, want c only", got)
	}
	if c.calls.Load() != 0 || d.failures.Load() != 0 {
		t.Error("an interval did not restart the counters")
	}
}

func TestParseConfig(t *testing.T) {
	t.Setenv(locality.EnvZone, "env-zone")
	t.Setenv(locality.EnvRegion, "env-region")
	tests := []struct {
		js      string
		want    string // fmt of self and the outlier config, or the error's text
		wantErr bool
	}{
		{``, "{env-zone env-region} {false 5 50 10 1s 10s 5m0s 50}", false},
		{`{}`, "{env-zone env-region} {false 5 50 10 1s 10s 5m0s 50}", false},
		{`{"zone":"a"}`, "{a env-region} {false 5 50 10 1s 10s 5m0s 50}", false},
		{`{"zone":"a","region":"r","outlierDetection":{"disabled":true}}`, "{a r} {true 5 50 10 1s 10s 5m0s 50}", false},
		{`{"outlierDetection":{"consecutiveFailures":2,"interval":"250ms","baseEjectionTime":"1m","maxEjectionTime":"30s","maxEjectionPercent":100,"unknown":1}}`,
			"{env-zone env-region} {false 2 50 10 250ms 1m0s 1m0s 100}", false},
		{`{"outlierDetection":{"interval":5}}`, "a duration is a string", true},
		{`{"outlierDetection":{"interval":"soon"}}`, "invalid duration", true},
		{`{"outlierDetection":{"failurePercentage":101}}`, "not within 1..100", true},
		{`{"outlierDetection":{"maxEjectionPercent":-1}}`, "not within 1..100", true},
		{`{"outlierDetection":{"baseEjectionTime":"-1s"}}`, "must not be negative", true},
		{`[1]`, "config", true},
	}
	for _, tt := range tests {
		p, err := parseConfig([]byte(tt.js))
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: error %v, want one saying %q", tt.js, err, tt.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.js, err)
			continue
		}
		o := p.outlier
		got := fmt.Sprintf("%v {%v %d %d %d %v %v %v %d}", p.self, o.disabled, o.consecutiveFailures, o.failurePercentage,
			o.requestVolume, o.interval, o.baseEjection, o.maxEjection, o.maxEjectionPercent)
		if got != tt.want {
			t.Errorf("%s: parsed %s, want %s", tt.js, got, tt.want)
		}
	}
}

func TestServiceConfigRoundTrip(t *testing.T) {
	js := ServiceConfig(Config{Zone: "a", Region: "r", OutlierDetection: &OutlierDetection{Interval: Duration(time.Second / 2)}})
	want := `{"loadBalancingConfig":[{"regchain_locality":{"zone":"a","region":"r","outlierDetection":{"interval":"500ms"}}}]}`
	if js != want {
		t.Errorf("ServiceConfig = %s, want %s", js, want)
	}
}
