package kratostest

import (
	"fmt"
	"strings"
	"sync"

	"github.com/go-kratos/kratos/v2/log"
)

// Logger is a Kratos logger keeping each line as "LEVEL k=v ...". The
// zero value is ready; it is safe for concurrent use.
type Logger struct {
	mu    sync.Mutex
	lines []string
}

// Log implements log.Logger.
func (l *Logger) Log(level log.Level, kv ...any) error {
	var b strings.Builder
	b.WriteString(level.String())
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, " %v=%v", kv[i], kv[i+1])
	}
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

// Lines returns the lines logged so far.
func (l *Logger) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}
