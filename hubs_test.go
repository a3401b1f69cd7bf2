package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestInboundCap(t *testing.T) {
	for _, role := range []string{"node", "seed"} {
		t.Run(role, func(t *testing.T) {
			is := is.New(t)
			cfg, err := parseFlags("peerdisc", []string{"-role=" + role, "-k", "1"}, io.Discard)
			is.NoErr(err)
			tbl := newTable(t, 100, distinctNodes(3)...) // peers it found itself: they do not count
			h := newAPI(cfg, tbl, newQuota(alive, 10*time.Second), quiet).handler()
			want := []int{200, 200, 409} // a node at -k 1 takes 2 x -k by announce, then refuses
			if role == "seed" {
				want = []int{200, 200, 200} // the seed takes all, up to -m
			}
			for i, w := range want {
				ip := fmt.Sprintf("203.0.113.%d", i+1)
				is.Equal(ask(h, "POST", "/", ip+":4000", nodeJSON(ip, 5000)).Code, w)
			}
			is.Equal(ask(h, "POST", "/", "203.0.113.1:4000", nodeJSON("203.0.113.1", 5000)).Code, 200) // known peers still announce
			is.Equal(tbl.Len(), 3+2+strings.Count(role, "seed"))
		})
	}
}

func TestInboundCapHoldsUnderConcurrentAnnounces(t *testing.T) {
	is := is.New(t)
	tbl := newTable(t, 1000)
	var waiting atomic.Int32
	release := make(chan struct{})
	check := func(context.Context, Node) error { // every check passes, once all 50 are under way
		if waiting.Add(1) == 50 {
			close(release)
		}
		<-release
		return nil
	}
	mux := http.NewServeMux()
	v := newQuota(check, 10*time.Second)
	addRoutes(mux, api{table: tbl, checks: v, local: netip.Addr.IsLoopback, maxInbound: 16, log: quiet})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	codes := postConcurrently(t, srv.URL+"/", distinctNodes(50))
	is.Equal(codes[200], 16) // all 50 found room before their checks; 16 are taken
	is.Equal(codes[409], 34) // the rest are refused after theirs
	is.Equal(tbl.Len(), 16)  // never past the cap
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
	p.table.SetSeeds([]Node{seed.self()})
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
	q.table.SetSeeds([]Node{counting})
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

// TestFootholdIsLetGo: a newcomer whose seed lists only a full node takes
// it as a foothold, finds -k others through it, and lets it go.
func TestFootholdIsLetGo(t *testing.T) {
	is := is.New(t)
	cfg := config{enough: 2, max: 10}
	ys := startPeers(t, 2, cfg)
	x := startPeer(t, "127.0.0.1", cfg)
	_, err := x.table.Add(ys[0].self(), ys[1].self())
	is.NoErr(err)
	full, seed := fullListedBySeed(t, x.self())
	p := startPeer(t, "127.0.0.1", cfg)
	p.table.SetSeeds([]Node{seed})
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
	full, seed := fullListedBySeed(t, z.self())
	p := startPeer(t, "127.0.0.1", cfg)
	p.table.SetSeeds([]Node{seed})
	p.nodeRound(context.Background())
	is.True(p.table.Has(full.self())) // alone, and the only candidate is full: a foothold
	_, err := p.table.Remove(full.self())
	is.NoErr(err) // it left, as after failed checks
	ys := startPeers(t, 2, cfg)
	_, err = p.table.Add(full.self(), ys[0].self(), ys[1].self())
	is.NoErr(err) // found again, as an ordinary peer, beside two others
	p.nodeRound(context.Background())
	is.True(p.table.Has(full.self())) // kept: it is not the foothold any more
	is.Equal(p.table.Len(), 3)
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
	p.table.SetSeeds([]Node{seed.self()})
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

// TestSwapWhenThePeersLeaveMeanwhile: a node at -k swaps a peer for the
// seed's candidate, and its only peer says goodbye while the seed answers:
// the round ends with the candidate and nothing to swap out, not a panic.
func TestSwapWhenThePeersLeaveMeanwhile(t *testing.T) {
	is := is.New(t)
	peer := startPeer(t, "127.0.0.1", config{enough: 1, max: 10})
	fresh := startPeer(t, "127.0.0.1", config{enough: 1, max: 10})
	p := startPeer(t, "127.0.0.1", config{enough: 1, max: 10})
	_, err := p.table.Add(peer.self()) // found by p: nobody announced to it
	is.NoErr(err)
	seed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/nodes/" {
			req, _ := http.NewRequest("DELETE", p.srv.URL+"/nodes/", strings.NewReader(nodeBody(peer.self())))
			if resp, err := http.DefaultClient.Do(req); err == nil { // the goodbye, meanwhile
				resp.Body.Close()
			}
			io.WriteString(w, "["+nodeBody(fresh.self())+"]")
			return
		}
		io.WriteString(w, "{}")
	}))
	defer seed.Close()
	p.table.SetSeeds([]Node{nodeOf(t, seed.URL)})
	p.nodeRound(context.Background())
	is.Equal(p.table.List(), []Node{fresh.self()}) // the candidate came in; the peer had gone
}

// TestFailedRemovesAreLogged: a node that lets its foothold go while its
// file cannot be written says so in its log.
func TestFailedRemovesAreLogged(t *testing.T) {
	is := is.New(t)
	p := startPeer(t, "127.0.0.1", config{enough: 1, max: 10})
	var log syncBuffer
	p.log = slog.New(slog.NewTextHandler(&log, nil))
	_, err := p.table.AddFoothold(nodeAt("192.0.2.1", 1))
	is.NoErr(err)
	_, err = p.table.Add(nodeAt("192.0.2.2", 1), nodeAt("192.0.2.3", 1))
	is.NoErr(err)
	is.NoErr(os.Remove(p.table.path)) // the file's place taken by a directory: no write can rename over it
	is.NoErr(os.MkdirAll(filepath.Join(p.table.path, "in-the-way"), 0o755))
	_, removed := p.atLimit(context.Background(), nil)
	is.Equal(removed, []Node{nodeAt("192.0.2.1", 1)})                                // let go in memory
	is.True(strings.Contains(log.String(), `level=ERROR msg="let the foothold go"`)) // and the failed write said
}

// TestFootholdIsInTheTable: a foothold that leaves as it is added is not
// named as the foothold once it has gone.
func TestFootholdIsInTheTable(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	tbl := newTable(t, 10) // on disk: an add is answered once written, and the goodbye comes meanwhile
	n := nodeAt("192.0.2.1", 1)
	strays := 0
	for range 50 {
		left := make(chan struct{})
		go func() {
			defer close(left)
			tbl.Remove(n) // its goodbye, as it is taken
		}()
		tbl.AddFoothold(n)
		<-left
		if f, ok := tbl.Foothold(); ok && !tbl.Has(f) {
			strays++
		}
		tbl.Remove(n)
	}
	is.Equal(strays, 0) // the foothold is always in the table
}

// TestFullCandidateMetAgainIsNotTaken: a node that knows a peer meets a
// full candidate twice in one round, in the seed's sample and again on
// its walk. Full (409) the first time, it is passed over the second, not
// checked with GET / and taken as an ordinary peer: a node takes a full
// one only as a foothold, when it knows none.
func TestFullCandidateMetAgainIsNotTaken(t *testing.T) {
	is := is.New(t)
	cfg := config{enough: 2, max: 10}
	full, seed := fullListedBySeed(t, startPeer(t, "127.0.0.1", cfg).self())
	hop, peer := startPeer(t, "127.0.0.1", cfg), startPeer(t, "127.0.0.1", cfg)
	_, err := hop.table.Add(full.self()) // the walk: peer, then hop, whose list names full
	is.NoErr(err)
	_, err = peer.table.Add(hop.self())
	is.NoErr(err)
	p := startPeer(t, "127.0.0.1", cfg)
	p.table.SetSeeds([]Node{seed})
	_, err = p.table.Add(peer.self())
	is.NoErr(err)
	p.nodeRound(context.Background())
	is.True(!p.table.Has(full.self())) // full: not taken, as it knows a peer
}

// fullListedBySeed starts a node full to -m, whose one peer is its peer,
// so that it takes nobody more, and a seed that lists it alone; it
// returns the node and the seed's address.
func fullListedBySeed(t *testing.T, its Node) (full *testPeer, seed Node) {
	t.Helper()
	full = startPeer(t, "127.0.0.1", config{enough: 2, max: 1})
	s := startPeer(t, "127.0.0.1", config{max: 10})
	if _, err := full.table.Add(its); err != nil {
		t.Fatal(err)
	}
	if _, err := s.table.Add(full.self()); err != nil {
		t.Fatal(err)
	}
	return full, s.self()
}
