package main

// Hubs and footholds: what stops early joiners from becoming hubs. When
// every node took every announce, the first to join were listed by
// everyone (in-degree 72 at -k 10). So a node takes at most
// inboundPerEnough x -k peers by their announce (409 past that: errEnough;
// TestInboundCap); a candidate that is full is taken only as a foothold by
// a node that knows no peer, and let go once the node has found -k others
// (TestFootholdIsLetGo); and a node at -k tries a fresh candidate only
// while it has found at most -k peers itself. In-degree at 1,000 nodes is
// at most 36, against the 4 x -k target (TestSimulation).

import (
	"errors"
	"math/rand/v2"
)

var errEnough = errors.New("this node has as many peers as it takes; try others")

// inboundCap is how many peers a node takes by their announce before it
// refuses new ones: inboundPerEnough x -k. The peers it finds itself do
// not count. The seed (0) has no such cap: -m and room.go bound it.
func inboundCap(cfg config) int {
	if cfg.role == "node" {
		return inboundPerEnough * max(cfg.enough, 1)
	}
	return 0
}

// limitMove is what a node at -k does in a round, beyond checking its peers.
type limitMove int

const (
	keepPeers limitMove = iota // nothing more
	tryOne                     // try one fresh candidate
	swapOne                    // a fresh candidate in the place of a random peer
)

// atLimitRule decides what a node at -k does, from its known peers and
// the outbound ones among them (those it chose: not taken by announce).
// One that took none of its peers by their announce (behind NAT nobody can
// announce to it; eclipsed, no honest node does) swaps a peer every round for a candidate of the
// seeds', since nobody but itself can heal a bad first sample, and no node
// depends on these links: against 1,000 attacker addresses in 100 groups,
// 10 runs of TestAttack's scenario left 3 nodes eclipsed when half the
// swaps came from two hops away, and none now. One that found at most -k
// itself tries one more, one round in freshOneIn.
func atLimitRule(outbound, known, enough int, rng *rand.Rand) limitMove {
	switch {
	case outbound == known:
		return swapOne
	case outbound <= enough && rng.IntN(freshOneIn) == 0:
		return tryOne
	}
	return keepPeers
}

// footholdToLetGo is the foothold, once the node has more than enough
// peers with it: lest the nodes the seed lists, each many newcomers'
// foothold, collect links past 4 x -k.
func footholdToLetGo(t *Table, enough int) (Node, bool) {
	foothold, ok := t.Foothold()
	return foothold, ok && t.Len() > enough
}
