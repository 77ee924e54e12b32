package sdk

import (
	"context"
	"time"
)

// watchParent calls orphaned once getppid no longer returns want: the node
// died and the process was handed to init or a subreaper. It backs up the
// kernel's parent-death signal, which fires when the parent *thread* that
// started the plugin exits and does not exist outside Linux.
func watchParent(ctx context.Context, every time.Duration, getppid func() int, want int, orphaned func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if getppid() != want {
				orphaned()
				return
			}
		}
	}
}
