package main

import (
	"context"
	"slices"
)

// walk looks for need new peers two hops away: each peer names one of its
// own at random, and candidates come from samples of those ones' lists. A
// candidate from a peer's own list closes a triangle with that peer, and
// refills from there clustered the overlay (27 times a random graph's
// clustering at 10,000 nodes); two hops away, it stays near random.
func (r *refresher) walk(ctx context.Context, need int) []Node {
	var hops []Node
	for _, l := range r.samples(ctx, r.table.List(), 4) {
		l = slices.DeleteFunc(l, func(n Node) bool { return n == r.client.self || r.table.Has(n) || slices.Contains(hops, n) })
		if len(l) > 0 {
			hops = append(hops, l[r.rng.IntN(len(l))])
		}
	}
	return r.learn(ctx, r.samples(ctx, hops, 2*need+2), need)
}
