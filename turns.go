package main

// Sample turns: what stops a flood of samples from taking every core from
// announces. 64 connections asking ?sample=256 nonstop raised an
// announce's median from 60 us to 60 ms. Now samples are drawn one at a
// time, encoded outside the table's lock, and served to one caller group at
// a time, answer included, so that a flood from one group waits for itself:
// an announce's median stays within 0.8-1.3x of quiet
// (BenchmarkAnnounceDuringSampleFlood, TestSampleTurns).

import (
	"context"
	"net/netip"
	"sync"
)

// sampleTurns serves the samples of the callers of one group one at a
// time, the groups side by side, and draws one sample at a time.
type sampleTurns struct {
	drawing chan struct{} // full while a sample is drawn

	mu sync.Mutex
	of map[netip.Prefix]*groupTurn
}

// groupTurn is the turn of one group's callers.
type groupTurn struct {
	token   chan struct{} // full while a caller of the group has its turn
	callers int           // waiting for the turn or holding it
}

func newSampleTurns() *sampleTurns {
	return &sampleTurns{drawing: make(chan struct{}, 1), of: map[netip.Prefix]*groupTurn{}}
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
		tn.callers--
		if tn.callers == 0 {
			delete(ts.of, group)
		}
		ts.mu.Unlock()
	}
	select {
	case tn.token <- struct{}{}:
		return func() {
			<-tn.token
			leave()
		}
	case <-ctx.Done():
		leave()
		return nil
	}
}

// draw returns sample(), drawn when no other sample is, or nil if ctx ends first.
func (ts *sampleTurns) draw(ctx context.Context, sample func() []byte) []byte {
	select {
	case ts.drawing <- struct{}{}:
	case <-ctx.Done():
		return nil
	}
	defer func() { <-ts.drawing }()
	return sample()
}
