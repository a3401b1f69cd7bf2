package main

// The two-hop walk: what stops refills from clustering the overlay. A node
// short of -k whose seeds' candidates were dead or full used to take its
// peers' own peers; each such candidate closes a triangle with the peer,
// and at 10,000 nodes, where the seed lists a tenth and the rest are found
// through peers, that clustered the overlay 27 times a random graph's. Now
// a few peers that answered this round each name one of their own peers at
// random, a node two hops away, and candidates come from those hops'
// samples: clustering after three rounds of 20% churn is 1.8x random at
// 10,000 nodes (TestRefillsComeFromTwoHopsAway, TestSimulation), and a
// walk costs no timeout (TestRoundCostsOneTimeout).

import (
	"math/rand/v2"
	"slices"
)

// walkFrom picks the peers the walk asks: at most walkPeers, at random,
// of those that answered this round. One that did not would cost the round
// a second timeout, and asking every peer would cost a request per peer for
// one candidate.
func walkFrom(answered []Node, rng *rand.Rand) []Node {
	peers := slices.Clone(answered)
	rng.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	return peers[:min(len(peers), walkPeers)]
}

// twoHops picks the hops of the walk: from each peer's sample, one entry
// at random, but those that skip names and those already picked.
func twoHops(samples [][]Node, skip func(Node) bool, rng *rand.Rand) []Node {
	var hops []Node
	for _, l := range samples {
		l = slices.DeleteFunc(l, func(n Node) bool { return skip(n) || slices.Contains(hops, n) })
		if len(l) > 0 {
			hops = append(hops, l[rng.IntN(len(l))])
		}
	}
	return hops
}
