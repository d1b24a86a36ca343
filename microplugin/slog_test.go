package microplugin

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"go-micro.dev/v4/logger"
)

// fieldRecorder is a go-micro logger that keeps messages with their fields.
type fieldRecorder struct {
	level  logger.Level
	fields map[string]any
	mu     *sync.Mutex
	lines  *[]string
}

func newFieldRecorder(level logger.Level) *fieldRecorder {
	return &fieldRecorder{level: level, mu: new(sync.Mutex), lines: new([]string)}
}

func (l *fieldRecorder) Init(...logger.Option) error { return nil }
func (l *fieldRecorder) Options() logger.Options     { return logger.Options{Level: l.level} }
func (l *fieldRecorder) String() string              { return "fields" }
func (l *fieldRecorder) Fields(f map[string]any) logger.Logger {
	c := *l
	c.fields = f
	return &c
}
func (l *fieldRecorder) Log(level logger.Level, v ...any) { l.add(level, fmt.Sprint(v...)) }
func (l *fieldRecorder) Logf(level logger.Level, f string, v ...any) {
	l.add(level, fmt.Sprintf(f, v...))
}

func (l *fieldRecorder) add(level logger.Level, msg string) {
	line := level.String() + " " + msg
	for k, v := range l.fields {
		line += fmt.Sprintf(" %s=%v", k, v)
	}
	l.mu.Lock()
	*l.lines = append(*l.lines, line)
	l.mu.Unlock()
}

func (l *fieldRecorder) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), *l.lines...)
}

func TestSlogHandler(t *testing.T) {
	rec := newFieldRecorder(logger.InfoLevel)
	log := slog.New(SlogHandler(rec)).With("registry", "etcd").WithGroup("g")
	log.Debug("hidden")
	log.Warn("lease lost", "key", "/a/b", "error", fmt.Errorf("boom"))
	lines := rec.all()
	if len(lines) != 1 {
		t.Fatalf("lines %q, want only the warning", lines)
	}
	for _, want := range []string{"warn lease lost", "registry=etcd", "g.key=/a/b", "g.error=boom"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line %q lacks %q", lines[0], want)
		}
	}
}
