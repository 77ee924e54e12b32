package plugins

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// roleLog is where one role's log lines go, from its stderr and its Log
// calls together: the node's log, within the role's budget of lines
// (plugins.limits); lines over it are dropped and counted, and longer lines
// are cut.
type roleLog struct {
	log     *slog.Logger
	lines   *rate.Limiter
	maxLine int
	dropped prometheus.Counter
	notice  *rate.Limiter // "dropping lines" at most once a minute
}

func newRoleLog(log *slog.Logger, l Limits, dropped prometheus.Counter) *roleLog {
	return &roleLog{log: log, lines: rate.NewLimiter(rate.Limit(l.LogLinesPerSecond), l.LogBurst), maxLine: l.LogLineBytes,
		dropped: dropped, notice: rate.NewLimiter(rate.Every(time.Minute), 1)}
}

// maxAttrs bounds the attributes of one Log call.
const maxAttrs = 32

func (r *roleLog) emit(ctx context.Context, level slog.Level, msg string, attrs ...any) {
	if !r.lines.Allow() {
		r.dropped.Inc()
		if r.notice.Allow() {
			r.log.Warn("role logs over its limit: dropping lines (avnode_plugin_log_dropped_total counts them; plugins.limits.log_lines_per_second)")
		}
		return
	}
	if len(attrs) > 2*maxAttrs {
		attrs = attrs[:2*maxAttrs]
	}
	for i, a := range attrs {
		if v, ok := a.(string); ok {
			attrs[i] = r.cut(v)
		}
	}
	r.log.Log(ctx, level, r.cut(msg), attrs...)
}

func (r *roleLog) cut(s string) string {
	if len(s) <= r.maxLine {
		return s
	}
	return s[:r.maxLine] + "…(cut)"
}

// newHCLogger gives go-plugin a logger that writes into the node's slog,
// quietly: go-plugin reports every start at info level.
func newHCLogger(log *roleLog) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "plugin",
		Output: &lineLogger{log: log, level: slog.LevelDebug},
		Level:  hclog.Warn,
	})
}

// lineLogger turns written lines (a plugin's stderr, go-plugin's log) into
// log records. An unfinished line is cut at the role's line limit.
type lineLogger struct {
	log   *roleLog
	level slog.Level
	mu    sync.Mutex
	buf   bytes.Buffer
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadBytes('\n')
		if err != nil {
			w.buf.Write(line) // an unfinished line waits for its end
			for w.buf.Len() > w.log.maxLine {
				w.emit(w.buf.Next(w.log.maxLine))
			}
			return len(p), nil
		}
		w.emit(bytes.TrimRight(line, "\r\n"))
	}
}

func (w *lineLogger) emit(line []byte) {
	if len(line) == 0 {
		return
	}
	w.log.emit(context.Background(), w.level, string(line))
}
