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

func TestParseConfig(t *testing.T) {
	t.Setenv(locality.EnvZone, "env-zone")
	t.Setenv(locality.EnvRegion, "env-region")
	tests := []struct {
		js      string
		want    string // fmt of self and the outlier config, or the error's text
		wantErr bool
	}{
		// Zero fields stay zero: nearest.NewTracker applies its defaults.
		{``, "{env-zone env-region} {false 0 0 0 0s 0s 0s 50}", false},
		{`{}`, "{env-zone env-region} {false 0 0 0 0s 0s 0s 50}", false},
		{`{"zone":"a"}`, "{a env-region} {false 0 0 0 0s 0s 0s 50}", false},
		{`{"zone":"a","region":"r","outlierDetection":{"disabled":true}}`, "{a r} {true 0 0 0 0s 0s 0s 50}", false},
		{`{"outlierDetection":{"consecutiveFailures":2,"failurePercentage":30,"requestVolume":4,"interval":"250ms","baseEjectionTime":"1m","maxEjectionTime":"30s","maxEjectionPercent":100,"unknown":1}}`,
			"{env-zone env-region} {false 2 30 4 250ms 1m0s 30s 100}", false},
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
		o := p.ejection
		got := fmt.Sprintf("%v {%v %d %d %d %v %v %v %d}", p.self, p.disabled, o.ConsecutiveFailures, o.FailurePercentage,
			o.RequestVolume, o.Interval, o.BaseTime, o.MaxTime, o.MaxEjectionPercent)
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
