package watch

import "testing"

func TestAddEmitCancel(t *testing.T) {
	var l List[int]
	var got []int
	cancel := l.Add(func(v int) { got = append(got, v) })
	l.Emit(1)
	cancel()
	l.Emit(2)
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("watcher saw %v, want [1]: events after cancel must not arrive", got)
	}
}
