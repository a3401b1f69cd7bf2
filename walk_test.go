package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

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

// TestRoundCostsOneTimeout: a node short of -k, whose table holds peers
// that accept and never answer, walks only from peers that answered this
// round, a few of them: each hung peer is called once in the round (its
// check, which times out), not twice, and the walk asks at most walkPeers
// peers for a sample, not every one.
func TestRoundCostsOneTimeout(t *testing.T) {
	is := is.New(t)
	p := startPeer(t, "127.0.0.1", config{enough: 10, max: 100, timeout: seconds(300 * time.Millisecond)})
	var hung []Node
	var calls []*atomic.Int32
	for range 3 {
		h := hungAddr(t)
		hung = append(hung, h.node)
		calls = append(calls, h.calls)
	}
	var live []Node
	var samples []*atomic.Int32
	for range 6 {
		n, _, other := countingServer(t) // answers as a node; other counts its GET /nodes/
		live = append(live, n)
		samples = append(samples, other)
	}
	_, err := p.table.Add(append(hung, live...)...)
	is.NoErr(err)
	start := time.Now()
	p.nodeRound(context.Background())
	t.Logf("a round with 3 hung peers at -t 300ms took %v", time.Since(start).Round(time.Millisecond))
	for _, c := range calls {
		is.Equal(c.Load(), int32(1)) // a hung peer is called once: its check, not again by the walk
	}
	asked := int32(0)
	for _, s := range samples {
		asked += s.Load()
	}
	is.True(asked >= 1 && asked <= walkPeers) // the walk asks a few peers that answered, not every one
}

// TestWalkSkipsWhatIsNotANode: a peer whose list names a web server every
// round, as a hop for the walk, makes a node short of -k call it once
// every -f+1 rounds, as a seed's list would (notnode.go), not every round.
func TestWalkSkipsWhatIsNotANode(t *testing.T) {
	is := is.New(t)
	var calls atomic.Int32
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.WriteString(w, "<html>hello</html>")
	}))
	t.Cleanup(web.Close)
	peer := startPeer(t, "127.0.0.1", config{enough: 10, max: 10})
	_, err := peer.table.Add(nodeOf(t, web.URL))
	is.NoErr(err)
	p := startPeer(t, "127.0.0.1", config{enough: 10, max: 10, fails: 2})
	_, err = p.table.Add(peer.self())
	is.NoErr(err)
	var perRound []int32
	for range 6 {
		before := calls.Load()
		p.nodeRound(context.Background())
		perRound = append(perRound, calls.Load()-before)
	}
	is.Equal(perRound, []int32{1, 0, 0, 1, 0, 0}) // asked, shunned for -f rounds, asked again
}
