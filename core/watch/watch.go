// Package watch is a list of callbacks that one part of the node calls when
// something happens (a name updated, a record stored) and others subscribe to.
package watch

import "sync"

// List holds the watchers of events of type T. The zero value is ready.
type List[T any] struct {
	mu   sync.Mutex
	fns  map[int]func(T)
	next int
}

// Add calls f for every event emitted until the returned cancel is called.
// f runs on the emitter's goroutine: it must not block.
func (l *List[T]) Add(f func(T)) (cancel func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fns == nil {
		l.fns = map[int]func(T){}
	}
	id := l.next
	l.next++
	l.fns[id] = f
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.fns, id)
	}
}

// Emit calls every watcher with e.
func (l *List[T]) Emit(e T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.fns {
		f(e)
	}
}
