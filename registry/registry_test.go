package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	kratosregistry "github.com/go-kratos/kratos/v2/registry"
	"go.uber.org/goleak"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func sample() *registry.Instance {
	return &registry.Instance{
		ID: "id-1", Name: "helloworld", Version: "v1.2.3",
		Metadata:  map[string]string{"weight": "10", "zone": "eu-1"},
		Endpoints: []string{"grpc://10.0.0.1:9000?isSecure=false", "http://10.0.0.1:8000"},
	}
}

// The JSON must be byte-for-byte what Kratos writes for a ServiceInstance, in
// both directions, so mixed fleets share records.
func TestJSONCompatibleWithKratos(t *testing.T) {
	in := sample()
	k := &kratosregistry.ServiceInstance{ID: in.ID, Name: in.Name, Version: in.Version, Metadata: in.Metadata, Endpoints: in.Endpoints}
	ours, err := registry.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	if string(ours) != string(theirs) {
		t.Fatalf("Marshal = %s\nkratos  = %s", ours, theirs)
	}
	back, err := registry.Unmarshal(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(in) {
		t.Fatalf("Unmarshal(kratos bytes) = %+v, want %+v", back, in)
	}
	// A Kratos record with null metadata decodes too.
	if _, err := registry.Unmarshal([]byte(`{"id":"a","name":"b","version":"","metadata":null,"endpoints":["grpc://h:1"]}`)); err != nil {
		t.Errorf("null metadata: %v", err)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	for _, data := range []string{
		``, `null`, `[]`, `{`, `"x"`, `{"id":1}`,
		`{"id":"a","name":"b","endpoints":[]}`,
		`{"id":"a/b","name":"b","endpoints":["grpc://h:1"]}`,
		`{"id":"a","name":"b","endpoints":["nohost"]}`,
		strings.Repeat(" ", registry.MaxRecordSize+1),
	} {
		in, err := registry.Unmarshal([]byte(data))
		if !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Unmarshal(%.40q) = %v, %v; want ErrInvalid", data, in, err)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	good, _ := registry.Marshal(sample())
	f.Add(good)
	f.Add([]byte(`{"id":"a","name":"b","metadata":{"":""},"endpoints":["grpc://[::1]:1"]}`))
	f.Add([]byte(`{"endpoints":[null]}`))
	f.Add([]byte(`{"id":` + strings.Repeat("1", 10000) + `}`))
	f.Add([]byte(`{"id":"a","name":"b","version":"\u001b]0;x\u0007","endpoints":["grpc://h:1"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := registry.Unmarshal(data)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			testutil.SafeMessage(t, "Unmarshal", err.Error())
			return
		}
		// Whatever decodes must validate, re-encode and decode to an equal value.
		out, err := registry.Marshal(in)
		if err != nil {
			t.Fatalf("decoded instance does not re-encode: %v", err)
		}
		again, err := registry.Unmarshal(out)
		if err != nil || !again.Equal(in) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, in)
		}
	})
}

func TestValidateMessages(t *testing.T) {
	cases := []struct {
		mod  func(*registry.Instance)
		want string
	}{
		{func(in *registry.Instance) { in.Name = "" }, "service name is empty"},
		{func(in *registry.Instance) { in.Name = "a/b" }, `has '/'`},
		{func(in *registry.Instance) { in.Name = "-x" }, "starts with"},
		{func(in *registry.Instance) { in.ID = strings.Repeat("x", 300) }, "longer than 256"},
		{func(in *registry.Instance) { in.Endpoints = nil }, "no endpoints"},
		{func(in *registry.Instance) { in.Endpoints = []string{"10.0.0.1:80"} }, "scheme and a host"},
		{func(in *registry.Instance) {
			in.Metadata = map[string]string{"k": strings.Repeat("v", registry.MaxMetadataSize)}
		}, "metadata is"},
		{func(in *registry.Instance) { in.Metadata = map[string]string{strings.Repeat("k", 300): ""} }, "metadata key"},
	}
	for _, c := range cases {
		in := sample()
		c.mod(in)
		err := registry.Validate(in)
		if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate = %v; want ErrInvalid mentioning %q", err, c.want)
		}
	}
	if err := registry.Validate(sample()); err != nil {
		t.Errorf("Validate(valid) = %v", err)
	}
	for _, name := range []string{"go.micro.srv.greeter", "helloworld", "a_b-c:d", "A1"} {
		if err := registry.ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v", name, err)
		}
	}
	if err := registry.ValidateWatch(""); err != nil {
		t.Errorf("ValidateWatch(\"\") = %v, want nil (every service)", err)
	}
	if err := registry.ValidateWatch(".bad"); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("ValidateWatch(.bad) = %v, want ErrInvalid", err)
	}
}

func TestEqualAndClone(t *testing.T) {
	a := sample()
	b := a.Clone()
	if !a.Equal(b) {
		t.Fatal("clone not equal")
	}
	b.Endpoints[0], b.Endpoints[1] = b.Endpoints[1], b.Endpoints[0]
	if !a.Equal(b) {
		t.Error("endpoint order must not matter")
	}
	if a.Endpoints[0] != "grpc://10.0.0.1:9000?isSecure=false" {
		t.Error("Equal or Clone changed the original")
	}
	b.Metadata["weight"] = "20"
	if a.Equal(b) || a.Metadata["weight"] != "10" {
		t.Error("metadata change not seen, or clone shares the map")
	}
	var nilMeta, emptyMeta = sample(), sample()
	nilMeta.Metadata, emptyMeta.Metadata = nil, map[string]string{}
	if !nilMeta.Equal(emptyMeta) {
		t.Error("nil metadata must equal empty metadata")
	}
	if (*registry.Instance)(nil).Clone() != nil || !(*registry.Instance)(nil).Equal(nil) || a.Equal(nil) {
		t.Error("nil handling")
	}
	x, y := sample(), sample()
	y.ID = "id-0"
	if !registry.EqualInstances([]*registry.Instance{x, y}, []*registry.Instance{y, x}) {
		t.Error("EqualInstances must ignore order")
	}
	if registry.EqualInstances([]*registry.Instance{x}, []*registry.Instance{y}) {
		t.Error("EqualInstances of different sets")
	}
}

func upd(svc string, ids ...string) *registry.Update {
	u := &registry.Update{Service: svc, Source: "test", Time: time.Now()}
	for _, id := range ids {
		in := sample()
		in.Name, in.ID = svc, id
		u.Instances = append(u.Instances, in)
	}
	return u
}

func ids(u *registry.Update) string {
	var s []string
	for _, in := range u.Instances {
		s = append(s, in.ID)
	}
	return u.Service + ":" + strings.Join(s, ",")
}

func TestFeedLatestWinsAndDedup(t *testing.T) {
	f := registry.NewFeed(context.Background(), nil)
	defer f.Stop()
	f.Publish(upd("a", "2", "1"))
	got, err := f.Next()
	if err != nil || ids(got) != "a:1,2" {
		t.Fatalf("Next = %v, %v; want a:1,2 (sorted)", got, err)
	}
	// Three states published while nobody reads: only the latest is seen.
	f.Publish(upd("a", "1"))
	f.Publish(upd("a", "3"))
	f.Publish(upd("a", "4"))
	if got, _ := f.Next(); ids(got) != "a:4" {
		t.Fatalf("Next = %s, want a:4 (latest wins)", ids(got))
	}
	// A state equal to the last delivered one cancels a pending change.
	f.Publish(upd("a", "5"))
	f.Publish(upd("a", "4"))
	f.Publish(upd("b", "1"))
	if got, _ := f.Next(); ids(got) != "b:1" {
		t.Fatalf("Next = %s, want b:1 (a went back to its delivered state)", ids(got))
	}
	// Services are delivered in the order they first changed.
	f.Publish(upd("c", "1"))
	f.Publish(upd("a", "6"))
	f.Publish(upd("c", "2"))
	if got, _ := f.Next(); ids(got) != "c:2" {
		t.Fatalf("Next = %s, want c:2", ids(got))
	}
	if got, _ := f.Next(); ids(got) != "a:6" {
		t.Fatalf("Next = %s, want a:6", ids(got))
	}
	// A transient error is delivered once; a later state clears a pending one.
	boom := fmt.Errorf("x: %w", registry.ErrUnavailable)
	f.Fail(boom)
	if _, err := f.Next(); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Next = %v, want the transient error", err)
	}
	f.Fail(boom)
	f.Publish(upd("a", "7"))
	if got, err := f.Next(); err != nil || ids(got) != "a:7" {
		t.Fatalf("Next = %v, %v; want a:7 and no stale error", got, err)
	}
	// Forget makes an equal state deliverable again.
	f.Forget("a")
	f.Publish(upd("a", "7"))
	if got, _ := f.Next(); ids(got) != "a:7" {
		t.Fatalf("after Forget: %s", ids(got))
	}
}

func TestFeedCopiesAndEnd(t *testing.T) {
	var stopped sync.WaitGroup
	stopped.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	f := registry.NewFeed(ctx, stopped.Done)
	f.Publish(upd("a", "1"))
	got, _ := f.Next()
	got.Instances[0].Metadata["weight"] = "x"
	f.Forget("a")
	f.Publish(upd("a", "1"))
	again, _ := f.Next()
	if again.Instances[0].Metadata["weight"] != "10" {
		t.Fatal("Next must return the caller's own copy")
	}
	done := make(chan error, 1)
	go func() { _, err := f.Next(); done <- err }()
	cancel()
	err := <-done
	if !errors.Is(err, registry.ErrStopped) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after ctx cancel = %v", err)
	}
	stopped.Wait() // onStop ran
	f.End(registry.ErrClosed)
	if _, err := f.Next(); errors.Is(err, registry.ErrClosed) {
		t.Fatal("the first End must win")
	}
	select {
	case <-f.Done():
	default:
		t.Fatal("Done not closed")
	}
	f.Publish(upd("a", "2")) // after the end: ignored, no panic
}

func TestSnapshotEntryAge(t *testing.T) {
	now := time.Now()
	e := registry.SnapshotEntry{Update: &registry.Update{Time: now.Add(-time.Minute)}, Saved: now.Add(-time.Second)}
	if got := e.Age(now); got != time.Minute {
		t.Errorf("Age = %v, want 1m (from the source's confirmation time)", got)
	}
	e.Update.Time = time.Time{}
	if got := e.Age(now); got != time.Second {
		t.Errorf("Age without Update.Time = %v, want 1s (from Saved)", got)
	}
}

// A ctx that is already done (or is cancelled while the feed is made) ends
// the feed cleanly: no race, no panic, Next reports it.
func TestFeedWithDoneContext(t *testing.T) {
	for i := 0; i < 200; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		if i%2 == 0 {
			cancel()
		} else {
			go cancel()
		}
		var ran sync.WaitGroup
		ran.Add(1)
		f := registry.NewFeed(ctx, ran.Done)
		var h registry.Hub
		h.Add(f, "a")
		ran.Wait()
		if _, err := f.Next(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Next = %v, want context.Canceled", err)
		}
		if n := h.Len(); n != 0 {
			t.Fatalf("hub keeps %d ended feeds", n)
		}
	}
}

// TestFeedTerminalErrorsMatchErrStopped: every way a feed ends gives Next an
// error matching ErrStopped, so one errors.Is check ends a watch loop, and
// the cause stays visible.
func TestFeedTerminalErrorsMatchErrStopped(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name   string
		end    func(f *registry.Feed)
		alsoIs error
	}{
		{"Stop", func(f *registry.Feed) { f.Stop() }, nil},
		{"registry closed", func(f *registry.Feed) { f.End(registry.ErrClosed) }, registry.ErrClosed},
		{"other cause", func(f *registry.Feed) { f.End(io.ErrUnexpectedEOF) }, io.ErrUnexpectedEOF},
		{"nil", func(f *registry.Feed) { f.End(nil) }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := registry.NewFeed(context.Background(), nil)
			tc.end(f)
			_, err := f.Next()
			if !errors.Is(err, registry.ErrStopped) {
				t.Errorf("Next = %v, want an error matching ErrStopped", err)
			}
			if tc.alsoIs != nil && !errors.Is(err, tc.alsoIs) {
				t.Errorf("Next = %v, want it to match %v too", err, tc.alsoIs)
			}
		})
	}
	f := registry.NewFeed(cancelled, nil)
	_, err := f.Next()
	if !errors.Is(err, registry.ErrStopped) || !errors.Is(err, context.Canceled) {
		t.Errorf("Next on a done ctx = %v, want ErrStopped and context.Canceled", err)
	}
}

// TestErrorsQuoteBoundedInput: an error about an input shows at most a
// bounded, escaped prefix of it, however long and whatever bytes it holds
// (a 1 MB version full of escape sequences came back whole).
func TestErrorsQuoteBoundedInput(t *testing.T) {
	hostile := strings.Repeat("\x1b]0;owned\x07\n\r\xff", 1<<16) // 1 MB
	cases := []struct {
		name string
		mod  func(*registry.Instance)
	}{
		{"version", func(in *registry.Instance) { in.Version = hostile }},
		{"short version", func(in *registry.Instance) { in.Version = "v1\x1b[2J" }},
		{"name", func(in *registry.Instance) { in.Name = hostile }},
		{"short name", func(in *registry.Instance) { in.Name = "a\x1b[2J" }},
		{"id", func(in *registry.Instance) { in.ID = "x\x1b" + strings.Repeat("y", 200) }},
		{"endpoint", func(in *registry.Instance) { in.Endpoints = []string{"\x1b[31m" + strings.Repeat("z", 2000)} }},
		{"metadata key", func(in *registry.Instance) { in.Metadata = map[string]string{hostile[:300]: ""} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := sample()
			c.mod(in)
			err := registry.Validate(in)
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
			checkMessage(t, err.Error())
			checkMessage(t, in.String())
		})
	}
}

// checkMessage fails if msg is long or holds a control character.
func checkMessage(t *testing.T, msg string) {
	t.Helper()
	if len(msg) > 400 {
		t.Errorf("message is %d bytes: %.120q...", len(msg), msg)
	}
	if i := strings.IndexFunc(msg, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd }); i >= 0 {
		t.Errorf("message holds a control character or invalid UTF-8 at %d: %q", i, msg)
	}
}

func TestQuote(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", `""`},
		{"greeter", `"greeter"`},
		{"a\x1b[2Jb\n", `"a\x1b[2Jb\n"`},
		{"\xff", `"\xff"`},
		{strings.Repeat("x", registry.MaxQuoteLen), `"` + strings.Repeat("x", registry.MaxQuoteLen) + `"`},
		{strings.Repeat("x", registry.MaxQuoteLen+1), `"` + strings.Repeat("x", registry.MaxQuoteLen) + `"... (81 bytes)`},
		// Cut at a rune boundary: the 3-byte rune that straddles the limit goes.
		{strings.Repeat("x", registry.MaxQuoteLen-1) + "€€", `"` + strings.Repeat("x", registry.MaxQuoteLen-1) + `"... (85 bytes)`},
	}
	for _, c := range cases {
		if got := registry.Quote(c.in); got != c.want {
			t.Errorf("Quote(%.40q) = %s, want %s", c.in, got, c.want)
		}
	}
	for in, want := range map[string]string{"greeter": "greeter", "a\x1b": `"a\x1b"`, strings.Repeat("x", 81): registry.Quote(strings.Repeat("x", 81))} {
		if got := registry.Clip(in); got != want {
			t.Errorf("Clip(%.40q) = %s, want %s", in, got, want)
		}
	}
	if got := sample().String(); got != "helloworld/id-1@v1.2.3" {
		t.Errorf("String of a valid instance = %q, want it bare", got)
	}
}

// FuzzQuote: whatever the input, Quote's output is bounded, escaped, and
// starts with the quoted input's prefix.
func FuzzQuote(f *testing.F) {
	f.Add("greeter")
	f.Add("\x1b]0;owned\x07\n\r\xff\u202e")
	f.Add(strings.Repeat("€", 40))
	f.Fuzz(func(t *testing.T, s string) {
		q := registry.Quote(s)
		testutil.SafeMessage(t, "Quote", q)
		if len(q) > 4*registry.MaxQuoteLen+40 {
			t.Fatalf("Quote(%d bytes) is %d bytes", len(s), len(q))
		}
		if len(s) <= registry.MaxQuoteLen && q != fmt.Sprintf("%q", s) {
			t.Fatalf("Quote(%q) = %s, want %%q", s, q)
		}
		in := &registry.Instance{Name: s, ID: s, Version: s}
		testutil.SafeMessage(t, "Instance.String", in.String())
	})
}

func TestSortRegistrations(t *testing.T) {
	st := func(name, id string) registry.RegistrationState {
		return registry.RegistrationState{Instance: &registry.Instance{Name: name, ID: id}}
	}
	s := []registry.RegistrationState{st("b", "1"), st("a", "2"), st("a", "1")}
	registry.SortRegistrations(s)
	var got []string
	for _, r := range s {
		got = append(got, r.Instance.Key())
	}
	if want := "a/1 a/2 b/1"; strings.Join(got, " ") != want {
		t.Errorf("SortRegistrations = %v, want %s", got, want)
	}
}
