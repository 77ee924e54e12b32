package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// LogLevelEnv names the environment variable that sets the lowest level a
// role's Host.Logger sends (debug, info, warn, error; default info). Records
// below it are dropped in the plugin, before they cost a call.
const LogLevelEnv = "AVNODE_PLUGIN_LOG_LEVEL"

func logLevelFromEnv() slog.Level {
	var l slog.Level
	if v := os.Getenv(LogLevelEnv); v != "" && l.UnmarshalText([]byte(v)) == nil {
		return l
	}
	return slog.LevelInfo
}

// hostHandler is the slog.Handler behind Host.Logger: each record becomes a
// Host.Log call, its attributes flattened to "group.key" = string. When the
// call fails the record goes to the fallback (stderr) instead.
type hostHandler struct {
	host     *grpcHost
	level    slog.Leveler
	attrs    []kv   // from WithAttrs, already flattened
	prefix   string // from WithGroup: "a.b."
	fallback slog.Handler
}

type kv struct{ k, v string }

func (h *hostHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *hostHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(h.attrs[:len(h.attrs):len(h.attrs)], flatten(nil, h.prefix, as)...)
	c.fallback = h.fallback.WithAttrs(as)
	return &c
}

func (h *hostHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "."
	c.fallback = h.fallback.WithGroup(name)
	return &c
}

func (h *hostHandler) Handle(ctx context.Context, r slog.Record) error {
	entry := &pluginpb.LogEntry{
		Level:   levelName(r.Level),
		Message: truncate(r.Message),
		Attrs:   make(map[string]string, len(h.attrs)+r.NumAttrs()),
	}
	for _, a := range h.attrs {
		entry.Attrs[a.k] = a.v
	}
	var as []slog.Attr
	r.Attrs(func(a slog.Attr) bool { as = append(as, a); return true })
	for _, a := range flatten(nil, h.prefix, as) {
		entry.Attrs[a.k] = a.v
	}
	// A record logged as a context ends must still reach the node.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sideCallTimeout)
	defer cancel()
	if _, err := h.host.c.Log(cctx, entry); err != nil {
		h.host.reportOnce("log", fmt.Sprintf("avnode sdk: the node did not take a log record (%v); logging to stderr", err))
		return h.fallback.Handle(ctx, r)
	}
	return nil
}

// levelName maps slog levels onto the four the protocol knows.
func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	default:
		return "error"
	}
}

// flatten appends attributes as prefixed string pairs, following slog's
// rules: empty keys are dropped, a group with an empty key is inlined, an
// empty group vanishes.
func flatten(dst []kv, prefix string, as []slog.Attr) []kv {
	for _, a := range as {
		v := a.Value.Resolve()
		if v.Kind() == slog.KindGroup {
			p := prefix
			if a.Key != "" {
				p += a.Key + "."
			}
			dst = flatten(dst, p, v.Group())
			continue
		}
		if a.Key == "" {
			continue
		}
		dst = append(dst, kv{prefix + a.Key, truncate(valueString(v))})
	}
	return dst
}

func valueString(v slog.Value) string {
	switch v.Kind() {
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok && err != nil {
			return err.Error()
		}
	}
	return v.String()
}

func truncate(s string) string {
	if len(s) <= maxAttrLen {
		return s
	}
	cut := maxAttrLen
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("…(%d bytes cut)", len(s)-cut)
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

var _ slog.Handler = (*hostHandler)(nil)
