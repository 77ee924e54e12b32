package plugins

import (
	"bytes"
	"context"
	"log/slog"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger gives go-plugin a logger that writes into the node's slog,
// quietly: go-plugin reports every start at info level.
func newHCLogger(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "plugin",
		Output: &lineLogger{log: log, level: slog.LevelDebug},
		Level:  hclog.Warn,
	})
}

// lineLogger turns written lines (a plugin's stderr, go-plugin's log) into
// log records. Lines longer than 64 KiB are cut, not dropped.
type lineLogger struct {
	log   *slog.Logger
	level slog.Level
	mu    sync.Mutex
	buf   bytes.Buffer
}

const maxLogLine = 64 << 10

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadBytes('\n')
		if err != nil {
			w.buf.Write(line) // an unfinished line waits for its end
			if w.buf.Len() > maxLogLine {
				w.emit(w.buf.Next(maxLogLine))
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
	w.log.Log(context.Background(), w.level, string(line))
}
