package main

// The two-hop walk: what stops refills from clustering the overlay. A node
// short of -k whose seeds' candidates were dead or full used to take its
// peers' own peers; each such candidate closes a triangle with the peer,
// and at 10,000 nodes, where the seed lists a tenth and the rest are found
// through peers, that clustered the overlay 27 times a random graph's. Now
// each peer names one of its own peers at random, a node two hops away, and
// candidates come from those hops' samples: clustering after three rounds
// of 20% churn is 1.8x random at 10,000 nodes (TestRefillsComeFromTwoHopsAway,
// TestSimulation).

import (
	"math/rand/v2"
	"slices"
)

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
