package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/matryer/is"
)

// TestNodeShunsWhatIsNotANode: a seed's list names a web server (200 with
// HTML to everything). A node tries it once, then takes it from no list
// for -f rounds; once no list names it, nobody calls it.
func TestNodeShunsWhatIsNotANode(t *testing.T) {
	is := is.New(t)
	var calls atomic.Int32
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.WriteString(w, "<html>hello</html>")
	}))
	t.Cleanup(web.Close)
	victim := nodeOf(t, web.URL)
	list := []Node{victim}
	seed := listServer(t, "127.0.0.1", &list)
	p := startPeer(t, "127.0.0.1", config{enough: 1, max: 10, fails: 2})
	p.seeds = []Node{seed}
	var perRound []int32
	for round := range 6 {
		if round == 4 {
			list = nil // the list that named it is gone
		}
		before := calls.Load()
		p.nodeRound(context.Background())
		perRound = append(perRound, calls.Load()-before)
	}
	is.Equal(p.table.Len(), 0)                    // never a peer
	is.Equal(perRound, []int32{1, 0, 0, 1, 0, 0}) // tried, shunned for -f rounds, tried again; then no list names it
}

// TestIdlePeerGivesUpItsPlace: a peer that never announces itself to the
// node and lists nobody gives up its place, after idleRounds x -f rounds,
// to a candidate of another group; a peer that lists others stays, though
// it never announces itself either, as a node behind NAT sees its peers.
func TestIdlePeerGivesUpItsPlace(t *testing.T) {
	needAliases(t)
	is := is.New(t)
	idle, _, _ := countingServer(t) // answers as a node, lists nobody, never announces itself
	lister := startPeer(t, "127.0.0.1", config{max: 10})
	_, err := lister.table.Add(nodeAt("192.0.2.1", 1))
	is.NoErr(err) // it lists someone
	inbound, _, _ := countingServer(t)
	fresh := startPeer(t, "127.0.0.2", config{max: 10}) // another group: loopback addresses are groups of their own
	seed := startPeer(t, "127.0.0.1", config{max: 10})
	_, err = seed.table.Add(fresh.self())
	is.NoErr(err)
	p := startPeer(t, "127.0.0.1", config{enough: 1, max: 10, fails: 1})
	p.seeds = []Node{seed.self()}
	_, err = p.table.Add(idle, lister.self())
	is.NoErr(err)
	_, err = p.table.AddAnnounced(2, inbound)
	is.NoErr(err)
	rounds := 0
	for ; rounds < 3*idleRounds && p.table.Has(idle); rounds++ {
		actAsNodes(t, p, inbound) // it announces itself every round
		p.nodeRound(context.Background())
	}
	t.Logf("the idle peer gave up its place after %d rounds", rounds)
	is.True(!p.table.Has(idle))         // gone
	is.True(p.table.Has(fresh.self()))  // for a candidate of another group
	is.True(p.table.Has(lister.self())) // the peer that lists others stays
	is.True(p.table.Has(inbound))       // and so does the one that announces itself
	is.True(rounds <= idleRounds*1+1)   // after idleRounds x -f rounds
}
