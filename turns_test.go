package main

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/matryer/is"
)

// TestSampleTurns: a group's sample requests are served one at a time, a
// caller that gives up leaves the queue, and other groups do not wait.
func TestSampleTurns(t *testing.T) {
	is := is.New(t)
	ts := &sampleTurns{of: map[netip.Prefix]*groupTurn{}}
	attacker, honest := netip.MustParsePrefix("198.51.0.0/16"), netip.MustParsePrefix("203.0.0.0/16")
	done := ts.take(context.Background(), attacker) // a caller that never reads its answer keeps its turn
	is.True(done != nil)

	gaveUp, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	is.Equal(ts.take(gaveUp, attacker), nil) // its group's next caller waits, until it gives up

	other := ts.take(context.Background(), honest) // another group does not wait
	is.True(other != nil)
	other()

	next := make(chan func())
	go func() { next <- ts.take(context.Background(), attacker) }()
	done() // the turn passes to the group's next caller
	(<-next)()
	is.Equal(len(ts.of), 0) // nothing is kept for groups with no caller
}
