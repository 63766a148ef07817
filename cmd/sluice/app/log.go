package app

import (
	"context"
	"fmt"
	"log/slog"
)

// redactingHandler removes the job's secrets from every log line: the
// message and every attribute value, errors and values of any type included,
// in groups and in attributes added with With.
type redactingHandler struct {
	h      slog.Handler
	redact func(string) string
}

// redactLogs wraps h so that nothing it writes holds a secret.
func redactLogs(h slog.Handler, redact func(string) string) slog.Handler {
	if redact == nil {
		return h
	}
	return &redactingHandler{h: h, redact: redact}
}

func (r *redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return r.h.Enabled(ctx, l)
}

func (r *redactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, r.redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(r.attr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r *redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = r.attr(a)
	}
	return &redactingHandler{h: r.h.WithAttrs(red), redact: r.redact}
}

func (r *redactingHandler) WithGroup(name string) slog.Handler {
	return &redactingHandler{h: r.h.WithGroup(name), redact: r.redact}
}

// attr redacts one attribute. Strings, errors, Stringers and any other value
// are turned to text and redacted; numbers, booleans, times and durations
// cannot hold a secret and stay as they are.
func (r *redactingHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, r.redact(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, ga := range g {
			red[i] = r.attr(ga)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, r.redact(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, r.redact(x.String()))
		default:
			return slog.String(a.Key, r.redact(fmt.Sprint(x)))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
