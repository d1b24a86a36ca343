package kratosplugin

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-kratos/kratos/v2/log"
)

// SlogHandler returns a slog.Handler that writes to a Kratos logger, so
// that the backends and the chain (which log through slog) log where the
// rest of a Kratos app logs: pass slog.New(kratosplugin.SlogHandler(logger))
// to their Logger options, as etcdchain.New does. Levels map to Kratos' (Debug,
// Info, Warn, Error); the message goes under log.DefaultMessageKey
// ("msg"), attributes follow as key/value pairs, group names prefixed with
// '.'. Kratos filters levels itself (log.NewFilter), so the handler is
// enabled for every level. If l is nil, log.GetLogger() at each call.
func SlogHandler(l log.Logger) slog.Handler { return &slogHandler{l: l} }

type slogHandler struct {
	l      log.Logger
	kv     []any
	prefix string
}

func kratosLevel(l slog.Level) log.Level {
	switch {
	case l < slog.LevelInfo:
		return log.LevelDebug
	case l < slog.LevelWarn:
		return log.LevelInfo
	case l < slog.LevelError:
		return log.LevelWarn
	}
	return log.LevelError
}

// Enabled implements slog.Handler.
func (h *slogHandler) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	kv := make([]any, 0, 2+len(h.kv)+2*r.NumAttrs())
	kv = append(kv, log.DefaultMessageKey, r.Message)
	kv = append(kv, h.kv...)
	r.Attrs(func(a slog.Attr) bool {
		kv = appendAttr(kv, h.prefix, a)
		return true
	})
	l := h.l
	if l == nil {
		l = log.GetLogger()
	}
	return l.Log(kratosLevel(r.Level), kv...)
}

func appendAttr(kv []any, prefix string, a slog.Attr) []any {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			kv = appendAttr(kv, p, g)
		}
		return kv
	}
	if a.Key == "" {
		return kv
	}
	val := v.Any()
	if err, ok := val.(error); ok {
		val = err.Error()
	} else if v.Kind() == slog.KindAny {
		val = fmt.Sprint(val)
	}
	return append(kv, prefix+a.Key, val)
}

// WithAttrs implements slog.Handler.
func (h *slogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.kv = append([]any(nil), h.kv...)
	for _, a := range as {
		c.kv = appendAttr(c.kv, h.prefix, a)
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}
