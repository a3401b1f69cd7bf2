package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/matryer/is"
)

func TestNodeSendsOneCheckPerPeerPerRoundOnceLimitMet(t *testing.T) {
	is := is.New(t)
	peer, checks, other := countingServer(t)
	peer2, checks2, _ := countingServer(t)
	seed, seedAnnounces, seedOther := countingServer(t)
	inbound, checks3, _ := countingServer(t)
	p := startPeer(t, "127.0.0.1", config{enough: 1, max: 10})
	p.table.SetSeeds([]Node{seed})
	_, err := p.table.Add(peer, peer2)
	is.NoErr(err)
	_, err = p.table.AddAnnounced(2, inbound) // as by its announce
	is.NoErr(err)
	for range 5 {
		p.nodeRound(context.Background())
	}
	is.Equal(checks.Load(), int32(5))        // one check per round
	is.Equal(checks2.Load(), int32(5))       // for each peer
	is.Equal(checks3.Load(), int32(5))       // the one that announced itself too
	is.Equal(other.Load(), int32(0))         // no list fetched: past the limit, no fresh candidate is tried
	is.Equal(seedAnnounces.Load(), int32(5)) // one announce per round keeps the seed's list whole
	is.Equal(seedOther.Load(), int32(0))     // no list asked of the seed
}

func TestSeedRelearnsANodeItDropped(t *testing.T) {
	is := is.New(t)
	seed := startPeer(t, "127.0.0.1", config{max: 10})
	nodes := startPeers(t, 2, config{enough: 1, max: 10})
	for _, n := range nodes {
		n.table.SetSeeds([]Node{seed.self()})
	}
	runRounds(seed, nodes)
	is.True(converged(seed, nodes, 1)) // both nodes know their limit of 1 peer
	_, err := seed.table.Remove(nodes[0].self())
	is.NoErr(err) // as after a passing failure
	runRounds(seed, nodes)
	is.True(!seed.table.Has(nodes[0].self())) // the seed checked it before it dropped it: the node thinks it listed
	runRounds(seed, nodes)
	is.True(seed.table.Has(nodes[0].self())) // unchecked for a round, a node that knows enough peers announces to the seed again
}

func TestNetworkConvergesAndForgetsTheDead(t *testing.T) {
	is := is.New(t)
	seed := startPeer(t, "127.0.0.1", config{max: 100})
	nodes := startPeers(t, 6, config{enough: 10, max: 100})
	for _, n := range nodes {
		n.table.SetSeeds([]Node{deadAddr(t), seed.self()}) // a dead seed first: the next one is tried
	}
	rounds := 0
	for !converged(seed, nodes, 10) && rounds < 5 {
		runRounds(seed, nodes)
		rounds++
	}
	is.True(converged(seed, nodes, 10)) // every node knows the other 5, the seed all 6
	is.True(rounds <= 2)                // within two rounds
	t.Logf("converged in %d rounds", rounds)

	dead := nodes[2]
	dead.srv.Close()
	nodes = append(nodes[:2], nodes[3:]...)
	runRounds(seed, nodes)
	for _, p := range append(nodes, seed) {
		is.True(!p.table.Has(dead.self())) // gone after one round, not learned back from a stale list
	}
	runRounds(seed, nodes)
	for _, p := range append(nodes, seed) {
		is.True(!p.table.Has(dead.self())) // and stays gone
	}
}

func TestIPv6Network(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback here:", err)
	} else {
		ln.Close()
	}
	is := is.New(t)
	seed := startPeer(t, "::1", config{max: 10})
	nodes := []*testPeer{startPeer(t, "::1", config{enough: 10, max: 10}), startPeer(t, "::1", config{enough: 10, max: 10})}
	for _, n := range nodes {
		n.table.SetSeeds([]Node{seed.self()})
	}
	runRounds(seed, nodes)
	runRounds(seed, nodes)
	is.True(converged(seed, nodes, 10)) // nodes on ::1 find each other
	is.Equal(nodes[0].table.List()[0].IP.String(), "::1")
}

func TestNodeSaysWhyItIsAlone(t *testing.T) {
	tests := []struct {
		status int
		want   string
	}{
		{422, "the seed {seed} could not reach us at {self}; see -a"},
		{403, "the seed {seed} refused us: it sees our calls come from another address than {self}; see -a"},
		{409, "the seed {seed} is full"},
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			is := is.New(t)
			refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				writeError(w, tc.status, "SECRET_REASON")
			}))
			defer refusing.Close()
			p := startPeer(t, "127.0.0.1", config{enough: 3, max: 10})
			var logs syncBuffer
			p.log = slog.New(slog.NewTextHandler(&logs, nil))
			seed := nodeOf(t, refusing.URL)
			p.table.SetSeeds([]Node{seed})
			s := p.nodeRound(context.Background())
			is.True(s.alone) // nobody took it
			want := strings.NewReplacer("{seed}", seed.String(), "{self}", p.self().String()).Replace(tc.want)
			is.True(strings.Contains(logs.String(), "level=WARN msg=\""+want)) // says why, in our words
			is.True(!strings.Contains(logs.String(), "SECRET"))                // never the seed's
		})
	}
}

// TestNoSingleSeedDecides puts a lying seed (it lists only its accomplices,
// live nodes that know nobody else) or a silent one (it lists nothing)
// before an honest seed: within 5 rounds every new node knows at least half
// of -k honest peers, and the honest seed lists it.
func TestNoSingleSeedDecides(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"lying", "silent"} {
		t.Run(bad, func(t *testing.T) {
			is := is.New(t)
			const k = 4
			honestSeed := startPeer(t, "127.0.0.1", config{max: 100})
			honest := startPeers(t, 3*k, config{enough: k, max: 100}) // enough that they are not all full
			for _, p := range honest {
				p.table.SetSeeds([]Node{honestSeed.self()})
			}
			silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/nodes/" {
					io.WriteString(w, "[]\n") // lists nobody, ever
					return
				}
				io.WriteString(w, "{}\n")
			}))
			t.Cleanup(silent.Close)
			badSeed := nodeOf(t, silent.URL)
			accomplices := map[Node]bool{}
			if bad == "lying" {
				liar := startPeer(t, "127.0.0.1", config{max: 2 * k}) // its accomplices fill it: it takes nobody else
				badSeed = liar.self()
				for _, p := range startPeers(t, 2*k, config{enough: k, max: 100}) {
					_, err := liar.table.Add(p.self())
					is.NoErr(err)
					accomplices[p.self()] = true
				}
			}
			for range 2 {
				runRounds(honestSeed, honest)
			}
			newcomers := startPeers(t, 4, config{enough: k, max: 100})
			for _, p := range newcomers {
				p.table.SetSeeds([]Node{badSeed, honestSeed.self()}) // the bad one first
			}
			honestPeers := func(p *testPeer) int {
				n := 0
				for _, m := range p.table.List() {
					if !accomplices[m] {
						n++
					}
				}
				return n
			}
			for range 5 {
				runRounds(honestSeed, append(slices.Clone(honest), newcomers...))
			}
			for _, p := range newcomers {
				if honestPeers(p) < k/2 {
					t.Logf("%v: %d honest of %v", p.self(), honestPeers(p), p.table.List())
				}
				is.True(honestPeers(p) >= k/2)                  // at least half of -k honest peers
				is.True(honestSeed.table.Has(p.self()))         // and the honest seed lists it
				is.True(len(p.table.List()) <= 2*k+len(honest)) // sanity
			}
		})
	}
}

// TestSamplesOfASeedListedTwice: a seed named twice among a node's seeds
// gives its answer in each of its places, each written by its own call.
func TestSamplesOfASeedListedTwice(t *testing.T) {
	is := is.New(t)
	seed := startPeer(t, "127.0.0.1", config{role: "seed", max: 100})
	_, err := seed.table.Add(distinctNodes(5)...)
	is.NoErr(err)
	node := startPeer(t, "127.0.0.1", config{role: "node", enough: 3, max: 100})
	lists := node.samples(context.Background(), []Node{seed.self(), seed.self()}, 4)
	is.Equal(len(lists), 2)
	is.Equal(len(lists[0]), 4) // the first place's answer
	is.Equal(len(lists[1]), 4) // and the second's, not left empty
}

// TestRoundStopsWhenItsContextEnds: a node stopped during its round ends
// the round, and does not log that its seed did not answer.
func TestRoundStopsWhenItsContextEnds(t *testing.T) {
	is := is.New(t)
	var stop context.CancelFunc
	seed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/nodes/" {
			stop() // Ctrl-C, as the node asks for candidates
			<-r.Context().Done()
			return
		}
		io.WriteString(w, "{}")
	}))
	defer seed.Close()
	p := startPeer(t, "127.0.0.1", config{enough: 3, max: 10})
	p.table.SetSeeds([]Node{nodeOf(t, seed.URL)})
	var log syncBuffer
	p.log = slog.New(slog.NewTextHandler(&log, nil))
	for range 20 {
		var ctx context.Context
		ctx, stop = context.WithCancel(context.Background())
		p.nodeRound(ctx)
		stop()
	}
	is.Equal(log.String(), "") // nothing to say about a seed it stopped calling
}
