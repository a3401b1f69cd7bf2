package main

import (
	"context"
	"testing"

	"github.com/matryer/is"
)

// TestRefillsComeFromTwoHopsAway: a node short of -k, whose seeds give it
// nothing, takes a peer of its peer's peer, not its peer's own peer, which
// would close a triangle.
func TestRefillsComeFromTwoHopsAway(t *testing.T) {
	is := is.New(t)
	cfg := config{enough: 2, max: 10}
	far, hop, peer, p := startPeer(t, "127.0.0.1", cfg), startPeer(t, "127.0.0.1", cfg), startPeer(t, "127.0.0.1", cfg), startPeer(t, "127.0.0.1", cfg)
	_, err := hop.table.Add(far.self())
	is.NoErr(err)
	_, err = peer.table.Add(hop.self())
	is.NoErr(err)
	_, err = p.table.Add(peer.self())
	is.NoErr(err)
	p.nodeRound(context.Background())
	is.True(p.table.Has(far.self()))  // two hops away
	is.True(!p.table.Has(hop.self())) // not one hop
	is.Equal(p.table.Len(), 2)
}
