package dashboard

import (
	"sync"
	"time"
)

// history keeps the last samples of each charted number, so a page opened
// now shows the last minutes, not an empty chart.
type history struct {
	mu     sync.Mutex
	keep   int
	times  []int64
	series map[string][]float64
}

func newHistory(keep int) *history {
	return &history{keep: keep, series: map[string][]float64{}}
}

// add appends one sample. A number missing from it (a series that
// appeared later) reads as 0 before it started.
func (h *history) add(at time.Time, sample map[string]float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.times)
	for name := range sample {
		if _, ok := h.series[name]; !ok {
			h.series[name] = make([]float64, n, h.keep)
		}
	}
	h.times = append(h.times, at.UnixMilli())
	for name, values := range h.series {
		h.series[name] = append(values, sample[name])
	}
	if len(h.times) > h.keep {
		drop := len(h.times) - h.keep
		h.times = append(h.times[:0], h.times[drop:]...)
		for name, values := range h.series {
			h.series[name] = append(values[:0], values[drop:]...)
		}
	}
}

// snapshot copies the history out.
func (h *history) snapshot() ([]int64, map[string][]float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	times := append([]int64{}, h.times...)
	series := make(map[string][]float64, len(h.series))
	for name, values := range h.series {
		series[name] = append([]float64{}, values...)
	}
	return times, series
}
