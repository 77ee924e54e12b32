package bench

import (
	"context"
	"syscall"
	"time"
)

// idleCPU is what a network costs the machine at rest, per node, in % of
// one core: for window no name is asked for and nothing is fetched, and
// whatever runs is the nodes' own upkeep (routing-table refreshes,
// republishing, keep-alives, the connection manager). Both networks run
// in this process, one after the other, so the process's CPU time over
// the window is the network's.
func idleCPU(ctx context.Context, nodes int, window time.Duration) (float64, error) {
	// The work before leaves a tail (collections, LevelDB compactions,
	// the last answers in flight): let it pass first.
	select {
	case <-time.After(idleSettle):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	before, err := processCPU()
	if err != nil {
		return 0, err
	}
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	after, err := processCPU()
	if err != nil {
		return 0, err
	}
	return (after - before).Seconds() / window.Seconds() / float64(nodes) * 100, nil
}

// idleSettle is how long the network is left alone before the window.
const idleSettle = 5 * time.Second

// processCPU is the user and system CPU time this process used so far.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
