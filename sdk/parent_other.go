//go:build !linux

package sdk

// setParentDeathSignal has no kernel support outside Linux; the parent
// watch does the job alone.
func setParentDeathSignal() error { return nil }
