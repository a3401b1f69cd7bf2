package main

import (
	"context"
	"net/netip"
	"sync"
)

// sampleTurns serves the callers of one group one at a time, and the groups side
// by side.
type sampleTurns struct {
	mu sync.Mutex
	of map[netip.Prefix]*groupTurn
}

type groupTurn struct {
	token   chan struct{} // full while a caller of the group has its turn
	callers int           // waiting for the turn or holding it
}

// take waits for group's turn, and returns what ends it, or nil if ctx ends first.
func (ts *sampleTurns) take(ctx context.Context, group netip.Prefix) (done func()) {
	ts.mu.Lock()
	tn := ts.of[group]
	if tn == nil {
		tn = &groupTurn{token: make(chan struct{}, 1)}
		ts.of[group] = tn
	}
	tn.callers++
	ts.mu.Unlock()
	leave := func() {
		ts.mu.Lock()
		if tn.callers--; tn.callers == 0 {
			delete(ts.of, group)
		}
		ts.mu.Unlock()
	}
	select {
	case tn.token <- struct{}{}:
		return func() { <-tn.token; leave() }
	case <-ctx.Done():
		leave()
		return nil
	}
}
