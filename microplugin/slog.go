package microplugin

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"go-micro.dev/v4/logger"
)

// SlogHandler returns a slog.Handler that writes to a go-micro logger, so
// that the backends and the chain etcdchain.NewRegistry builds (which log
// through slog) log where the rest of the go-micro service logs. Levels map to
// go-micro's (Debug, Info, Warn, Error); attributes become fields, group
// names prefixed with '.'. If l is nil, logger.DefaultLogger at each call.
func SlogHandler(l logger.Logger) slog.Handler { return &slogHandler{l: l} }

type slogHandler struct {
	l      logger.Logger
	attrs  []slog.Attr
	prefix string // group prefix, "a.b."
}

func (h *slogHandler) logger() logger.Logger {
	if h.l != nil {
		return h.l
	}
	return logger.DefaultLogger
}

func microLevel(l slog.Level) logger.Level {
	switch {
	case l < slog.LevelInfo:
		return logger.DebugLevel
	case l < slog.LevelWarn:
		return logger.InfoLevel
	case l < slog.LevelError:
		return logger.WarnLevel
	}
	return logger.ErrorLevel
}

// Enabled implements slog.Handler.
func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.logger().Options().Level.Enabled(microLevel(l))
}

// Handle implements slog.Handler.
func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	fields := make(map[string]any, len(h.attrs)+r.NumAttrs())
	for _, a := range h.attrs {
		addField(fields, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		addField(fields, h.prefix, a)
		return true
	})
	l := h.logger()
	if len(fields) > 0 {
		l = l.Fields(fields)
	}
	l.Log(microLevel(r.Level), r.Message)
	return nil
}

func addField(fields map[string]any, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			addField(fields, p, g)
		}
		return
	}
	if a.Key == "" {
		return
	}
	switch v.Kind() {
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			fields[prefix+a.Key] = err.Error()
			return
		}
		fields[prefix+a.Key] = fmt.Sprint(v.Any())
	default:
		fields[prefix+a.Key] = v.Any()
	}
}

// WithAttrs implements slog.Handler.
func (h *slogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(c.attrs[:len(c.attrs):len(c.attrs)], prefixed(h.prefix, as)...)
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

func prefixed(prefix string, as []slog.Attr) []slog.Attr {
	if prefix == "" {
		return as
	}
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = slog.Attr{Key: prefix + strings.TrimPrefix(a.Key, prefix), Value: a.Value}
	}
	return out
}
