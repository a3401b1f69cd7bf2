package main

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestNodeSendsOneCheckPerPeerPerRoundOnceLimitMet(t *testing.T) {
	is := is.New(t)
	peer, checks, other := countingServer(t)
	peer2, checks2, _ := countingServer(t)
	seed, seedAnnounces, seedOther := countingServer(t)
	inbound, checks3, _ := countingServer(t)
	p := startPeer(t, "127.0.0.1", config{enough: 1, max: 10})
	p.seeds = []Node{seed}
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

// TestNodeAtLimitTriesAFreshCandidate: a node that found exactly -k peers
// still asks the seed for a candidate about one round in four, and takes
// one that answers, so that a bad first sample heals.
func TestNodeAtLimitTriesAFreshCandidate(t *testing.T) {
	is := is.New(t)
	seed := startPeer(t, "127.0.0.1", config{max: 10})
	fresh := startPeer(t, "127.0.0.1", config{enough: 1, max: 10})
	_, err := seed.table.Add(fresh.self())
	is.NoErr(err)
	peer, _, _ := countingServer(t)
	inbound, _, _ := countingServer(t)
	p := startPeer(t, "127.0.0.1", config{enough: 1, max: 10})
	p.rng = rand.New(rand.NewPCG(1, 2)) // the same rounds every run
	p.seeds = []Node{seed.self()}
	_, err = p.table.Add(peer)
	is.NoErr(err)
	_, err = p.table.AddAnnounced(2, inbound) // a peer announced itself: others reach this node
	is.NoErr(err)
	rounds := 0
	for ; rounds < 40 && !p.table.Has(fresh.self()); rounds++ {
		p.nodeRound(context.Background())
	}
	is.True(p.table.Has(fresh.self())) // the fresh candidate was tried and taken
	for range 20 {
		p.nodeRound(context.Background())
	}
	is.Equal(p.table.Len(), 3) // and then no more: it has found more than -k

	// How often: a seed whose lists are not lists is asked again and again.
	counting, _, asked := countingServer(t)
	q := startPeer(t, "127.0.0.1", config{enough: 1, max: 10})
	q.rng = rand.New(rand.NewPCG(1, 2))
	q.seeds = []Node{counting}
	_, err = q.table.Add(peer)
	is.NoErr(err)
	_, err = q.table.AddAnnounced(2, inbound)
	is.NoErr(err)
	for range 40 {
		q.nodeRound(context.Background())
	}
	t.Logf("asked the seed for a candidate in %d of 40 rounds", asked.Load())
	is.True(asked.Load() >= 5 && asked.Load() <= 20) // about one round in four
}

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

// TestFootholdIsLetGo: a newcomer whose seed lists only a full node takes
// it as a foothold, finds -k others through it, and lets it go.
func TestFootholdIsLetGo(t *testing.T) {
	is := is.New(t)
	cfg := config{enough: 2, max: 10}
	ys := startPeers(t, 2, cfg)
	x := startPeer(t, "127.0.0.1", cfg)
	_, err := x.table.Add(ys[0].self(), ys[1].self())
	is.NoErr(err)
	full := startPeer(t, "127.0.0.1", config{enough: 2, max: 1}) // full: it takes nobody more
	_, err = full.table.Add(x.self())
	is.NoErr(err)
	seed := startPeer(t, "127.0.0.1", config{max: 10})
	_, err = seed.table.Add(full.self())
	is.NoErr(err)
	p := startPeer(t, "127.0.0.1", cfg)
	p.seeds = []Node{seed.self()}
	p.nodeRound(context.Background())
	is.True(p.table.Has(full.self())) // alone, and the only candidate is full: a foothold
	for range 2 {
		p.nodeRound(context.Background())
	}
	is.True(p.table.Has(ys[0].self()) && p.table.Has(ys[1].self())) // found through it
	is.True(!p.table.Has(full.self()))                              // and let go
	is.Equal(p.table.Len(), 2)
}

// TestFootholdIsForgottenWhenItLeaves: a foothold that leaves the table,
// and is later found again as an ordinary peer, counts as one and is not
// let go at -k.
func TestFootholdIsForgottenWhenItLeaves(t *testing.T) {
	is := is.New(t)
	cfg := config{enough: 2, max: 10}
	z := startPeer(t, "127.0.0.1", cfg)
	full := startPeer(t, "127.0.0.1", config{enough: 2, max: 1}) // full: it takes nobody more
	_, err := full.table.Add(z.self())
	is.NoErr(err)
	seed := startPeer(t, "127.0.0.1", config{max: 10})
	_, err = seed.table.Add(full.self())
	is.NoErr(err)
	p := startPeer(t, "127.0.0.1", cfg)
	p.seeds = []Node{seed.self()}
	p.nodeRound(context.Background())
	is.True(p.table.Has(full.self())) // alone, and the only candidate is full: a foothold
	_, err = p.table.Remove(full.self())
	is.NoErr(err) // it left, as after failed checks
	ys := startPeers(t, 2, cfg)
	_, err = p.table.Add(full.self(), ys[0].self(), ys[1].self())
	is.NoErr(err) // found again, as an ordinary peer, beside two others
	p.nodeRound(context.Background())
	is.True(p.table.Has(full.self())) // kept: it is not the foothold any more
	is.Equal(p.table.Len(), 3)
}

func TestSeedRelearnsANodeItDropped(t *testing.T) {
	is := is.New(t)
	seed := startPeer(t, "127.0.0.1", config{max: 10})
	nodes := startPeers(t, 2, config{enough: 1, max: 10})
	for _, n := range nodes {
		n.seeds = []Node{seed.self()}
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
		n.seeds = []Node{deadAddr(t), seed.self()} // a dead seed first: the next one is tried
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
		n.seeds = []Node{seed.self()}
	}
	runRounds(seed, nodes)
	runRounds(seed, nodes)
	is.True(converged(seed, nodes, 10)) // nodes on ::1 find each other
	is.Equal(nodes[0].table.List()[0].IP, "::1")
}

func TestListenRandomSkipsTakenPorts(t *testing.T) {
	is := is.New(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	defer taken.Close()
	free := deadAddr(t).Port
	picks := []int{taken.Addr().(*net.TCPAddr).Port, free}
	ln, err := listenRandom("127.0.0.1", func() int { p := picks[0]; picks = picks[1:]; return p })
	is.NoErr(err) // a taken port is not fatal
	defer ln.Close()
	is.Equal(ln.Addr().(*net.TCPAddr).Port, free) // the next pick is used
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
			p.seeds = []Node{seed}
			s := p.nodeRound(context.Background())
			is.True(s.alone) // nobody took it
			want := strings.NewReplacer("{seed}", seed.String(), "{self}", p.self().String()).Replace(tc.want)
			is.True(strings.Contains(logs.String(), "level=WARN msg=\""+want)) // says why, in our words
			is.True(!strings.Contains(logs.String(), "SECRET"))                // never the seed's
		})
	}
}

func TestAloneNodeRetriesSooner(t *testing.T) {
	is := is.New(t)
	p := startPeer(t, "127.0.0.1", config{})
	p.retry = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	rounds := 0
	go func() {
		defer close(done)
		p.loop(ctx, time.Hour, func(context.Context) roundStats {
			if rounds++; rounds == 5 {
				cancel()
			}
			return roundStats{alone: true}
		})
	}()
	select {
	case <-done: // 1, 2, 4 and 8 ms between rounds, not an hour
	case <-time.After(10 * time.Second):
		t.Fatal("an alone node waited the whole interval")
	}
	is.Equal(rounds, 5)
}

// TestNodeNobodyAnnouncesToSwapsAPeer: a node at -k that no peer announced
// itself to (behind NAT, or eclipsed) swaps one peer for a fresh candidate
// every round, so that a bad first sample does not stay.
func TestNodeNobodyAnnouncesToSwapsAPeer(t *testing.T) {
	is := is.New(t)
	seed := startPeer(t, "127.0.0.1", config{max: 100})
	var fresh []Node
	for _, f := range startPeers(t, 3, config{enough: 3, max: 10}) {
		fresh = append(fresh, f.self())
	}
	_, err := seed.table.Add(fresh...)
	is.NoErr(err)
	var bad []Node
	for range 3 {
		n, _, _ := countingServer(t) // live, but what a liar would hand out
		bad = append(bad, n)
	}
	p := startPeer(t, "127.0.0.1", config{enough: 3, max: 10})
	p.seeds = []Node{seed.self()}
	_, err = p.table.Add(bad...)
	is.NoErr(err)
	for round := 1; round <= 3; round++ {
		p.nodeRound(context.Background())
		is.Equal(p.table.Len(), 3) // still -k: one in, one out
		good := 0
		for _, n := range p.table.List() {
			if slices.Contains(fresh, n) {
				good++
			}
		}
		is.True(good >= 1) // a fresh one came in at once
	}
}

// TestNoSingleSeedDecides puts a lying seed (it lists only its accomplices,
// live nodes that know nobody else) or a silent one (it lists nothing)
// before an honest seed: within 5 rounds every new node knows at least half
// of -k honest peers, and the honest seed lists it.
func TestNoSingleSeedDecides(t *testing.T) {
	for _, bad := range []string{"lying", "silent"} {
		t.Run(bad, func(t *testing.T) {
			is := is.New(t)
			const k = 4
			honestSeed := startPeer(t, "127.0.0.1", config{max: 100})
			honest := startPeers(t, 3*k, config{enough: k, max: 100}) // enough that they are not all full
			for _, p := range honest {
				p.seeds = []Node{honestSeed.self()}
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
				p.seeds = []Node{badSeed, honestSeed.self()} // the bad one first
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
