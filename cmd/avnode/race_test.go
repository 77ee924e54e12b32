//go:build race

package main

// Under the race detector, the daemons the tests start are race-built too.
func init() {
	buildFlags = append(buildFlags, "-race")
	raceMemoryFactor = 5
}
