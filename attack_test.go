package main

// Attackers in the simulation (see sim_test.go): many addresses in a few
// groups, every one answering checks as a node does and handing out only
// attacker addresses. What share of the seed's table and of honest nodes'
// peers do they get, and does any honest node end up with no honest peer?
// And the same arrivals against models of Bitcoin's addrman and geth's
// table (TestAttackTableRules).
//
//	go test -run TestAttack -v .

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
)

// simAttacker is A addresses over G groups, all answering as nodes.
type simAttacker struct {
	s     *sim
	addrs []Node
	mine  map[Node]bool

	salt uint64 // from the random seed: what its lists hold
}

// attack places an attacker with addrs addresses in groups /16s of its own
// on s's network: each answers GET / and POST / as a node, and lists only
// attacker addresses.
func (s *sim) attack(addrs, groups int) *simAttacker {
	a := &simAttacker{s: s, mine: map[Node]bool{}, salt: s.rng.Uint64()}
	for i := range addrs {
		g := i % groups
		n := nodeAt(fmt.Sprintf("5.%d.%d.%d", g, i/groups/250, 1+i/groups%250), 6000)
		a.addrs = append(a.addrs, n)
		a.mine[n] = true
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" && r.URL.Path == "/nodes/" {
			size, _ := strconv.Atoi(r.URL.Query().Get("sample"))
			size = min(max(size, 1), maxSample)
			// Drawn from the request, not from a shared generator: the calls
			// of a round arrive in any order, and a run must be the same
			// every time from one random seed.
			h := fnv.New64a()
			fmt.Fprint(h, a.salt, r.Host, r.RemoteAddr, r.URL, s.net.clock.Load())
			rng := rand.New(rand.NewPCG(h.Sum64(), 4))
			var list []Node
			for range size {
				list = append(list, a.addrs[rng.IntN(len(a.addrs))])
			}
			json.NewEncoder(w).Encode(list)
			return
		}
		io.WriteString(w, "{}\n")
	})
	s.net.mu.Lock()
	for _, n := range a.addrs {
		s.net.handlers[n.String()] = h
	}
	s.net.mu.Unlock()
	return a
}

// announce sends at most 1,000 of the attacker addresses that to does not
// list to it, each from its own address.
func (a *simAttacker) announce(to *simProc) {
	sent := 0
	for _, i := range a.s.rng.Perm(len(a.addrs)) {
		n := a.addrs[i]
		if to.table.Has(n) {
			continue
		}
		if sent++; sent > 1000 {
			break
		}
		p := &simProc{addr: n.String(), from: n.IP.String()}
		c := &http.Client{Transport: simLink{a.s.net, p}}
		body, _ := json.Marshal(n)
		req, _ := http.NewRequestWithContext(context.Background(), "POST", "http://"+to.addr+"/", strings.NewReader(string(body)))
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}

// share is the attacker's share of the entries of the given tables.
func (a *simAttacker) share(procs ...*simProc) float64 {
	bad, all := 0, 0
	for _, p := range procs {
		for _, n := range p.table.List() {
			all++
			if a.mine[n] {
				bad++
			}
		}
	}
	return float64(bad) / float64(max(all, 1))
}

// eclipsed counts the live honest nodes that know no live honest peer.
func (a *simAttacker) eclipsed() int {
	count := 0
	for _, p := range a.s.live() {
		honest := 0
		for _, n := range p.table.List() {
			if !a.mine[n] && !a.s.net.dead[n.String()] {
				honest++
			}
		}
		if honest == 0 {
			count++
			a.s.t.Logf("eclipsed: %s nat=%v found=%d table=%v", p.addr, p.nat, p.table.Outbound(), p.table.List())
		}
	}
	return count
}

// attackReport is one row of the attack table in DESIGN.md.
type attackReport struct {
	seedShare, peerShare float64
	eclipsed             int
	newcomersListed      float64 // by the seed
	newcomersKnown       float64 // by the seed or an honest node: others can find them
}

// simulateAttack: the attacker announces all its addresses to the seed,
// then n honest nodes join, while the attacker announces again, every
// round, whatever the seed has dropped; then n/10 newcomers join.
func simulateAttack(t *testing.T, n, addrs, groups int) attackReport {
	s := newSim(t, uint64(addrs*100+groups))
	a := s.attack(addrs, groups)
	a.announce(s.seed())
	s.join(n)
	for range 8 {
		s.round()
		a.announce(s.seed())
	}
	t.Logf("%d honest nodes ran 8 rounds beside the attacker; now %d newcomers join", n, n/10)
	newcomers := s.join(n / 10)
	for range 3 {
		s.round()
		a.announce(s.seed())
	}
	var rep attackReport
	rep.seedShare = a.share(s.seed())
	rep.peerShare = a.share(s.live()...)
	rep.eclipsed = a.eclipsed()
	listers := map[Node]bool{} // who some honest process lists
	for _, p := range append(s.live(), s.seed()) {
		for _, n := range p.table.List() {
			listers[n] = true
		}
	}
	listed, known, reachable := 0, 0, 0
	for _, p := range newcomers {
		if !p.nat {
			reachable++
			if s.seed().table.Has(p.client.self) {
				listed++
			}
			if listers[p.client.self] {
				known++
			}
		}
	}
	rep.newcomersListed = float64(listed) / float64(reachable)
	rep.newcomersKnown = float64(known) / float64(reachable)
	return rep
}

// TestAttack runs each attacker against 1,000 honest nodes, every flag at
// its default: the seed's table (-m 1000) is then what they compete for.
func TestAttack(t *testing.T) {
	skipIfShort(t, "1,000 simulated nodes against each attacker")
	skipUnderRace(t)
	t.Parallel()
	if !apart(t) {
		return
	}
	const n = 1000
	for _, tc := range []struct {
		addrs, groups              int
		maxSeedShare, maxPeerShare float64
	}{
		{0, 1, 0, 0}, // no attacker: the baseline
		{10_000, 4, 0.05, 0.10},
		{1_000, 100, 0.40, 0.40},
	} {
		t.Run(fmt.Sprintf("%d addresses in %d groups", tc.addrs, tc.groups), func(t *testing.T) {
			t.Parallel()
			is := is.NewRelaxed(t)
			r := simulateAttack(t, n, tc.addrs, tc.groups)
			t.Logf("| %d honest | %d addresses in %d groups | %.1f%% | %.1f%% | %d | %.1f%% by the seed, %.1f%% by the seed or an honest node |", n, tc.addrs, tc.groups, 100*r.seedShare, 100*r.peerShare, r.eclipsed, 100*r.newcomersListed, 100*r.newcomersKnown)
			is.True(r.seedShare <= tc.maxSeedShare) // the attacker's share of the seed's table
			is.True(r.peerShare <= tc.maxPeerShare) // of honest nodes' peers
			is.Equal(r.eclipsed, 0)                 // no honest node without an honest peer
			is.True(r.newcomersKnown >= 0.99)       // newcomers can be found within 3 rounds
			// Newcomers listed by the seed itself is reported, not asserted:
			// it misses 99% with the attacker, whose groups hold the level
			// of the largest (see DESIGN.md, Attackers).
		})
	}
}

// newcomerLinks runs n honest nodes for 8 rounds; with filler, 3 attacker
// addresses (8 ports each, as -hm allows) then announce themselves to every
// node every round, filling their slots for peers taken by announce. Then
// n/10 newcomers join; it returns the links, either way, between newcomers
// and the nodes that were there before, after 3 rounds.
func newcomerLinks(t *testing.T, n int, filler bool) int {
	s := newSim(t, 99)
	s.join(n)
	var a *simAttacker
	if filler {
		a = s.attack(24, 3) // 24 entries on 3 addresses, one per group: 5.0.0.1, 5.1.0.1, 5.2.0.1
		for i := range a.addrs {
			a.addrs[i] = nodeAt(fmt.Sprintf("5.%d.0.1", i%3), 6000+i)
		}
		s.net.mu.Lock()
		h := s.net.handlers["5.0.0.1:6000"]
		for _, m := range a.addrs {
			s.net.handlers[m.String()] = h
			a.mine[m] = true
		}
		s.net.mu.Unlock()
	}
	round := func() {
		s.round()
		if a != nil {
			for _, p := range s.live() {
				a.announce(p)
			}
		}
	}
	for range 8 {
		round()
	}
	t.Logf("%d nodes ran 8 rounds (attacker: %v); now %d newcomers join", n, filler, n/10)
	established := map[Node]bool{}
	for _, p := range s.live() {
		established[p.client.self] = true
	}
	newcomers := s.join(n / 10)
	for range 3 {
		round()
	}
	links := 0
	for _, p := range s.live() {
		for _, m := range p.table.List() {
			if established[p.client.self] != established[m] && (slices.Contains(newcomers, p) || established[p.client.self]) && !(a != nil && a.mine[m]) {
				links++
			}
		}
	}
	return links
}

func TestAttackFillingInboundSlots(t *testing.T) {
	skipIfShort(t, "1,000 simulated nodes, with and without the attacker")
	skipUnderRace(t)
	t.Parallel()
	if !apart(t) {
		return
	}
	is := is.New(t)
	without, with := newcomerLinks(t, 1000, false), newcomerLinks(t, 1000, true)
	t.Logf("| 3 addresses filling every node's inbound slots | links between newcomers and established nodes: %d, against %d without the attacker |", with, without)
	is.True(float64(with) >= 0.8*float64(without) && float64(with) <= 1.2*float64(without)) // newcomers meet the network as without the attacker
}

// TestAttackDeleteLoop: with 5% of requests lost, an attacker address sends
// 20 DELETEs of each of 10 live nodes to the seed every round, for 20
// rounds. A DELETE removes a node only once two checks in a row fail, and
// an answer holds for a round: the victims are out of the seed's list at
// most 5% of the time.
func TestAttackDeleteLoop(t *testing.T) {
	skipIfShort(t, "1,000 simulated nodes for 28 rounds")
	skipUnderRace(t)
	t.Parallel()
	if !apart(t) {
		return
	}
	is := is.New(t)
	s := newSim(t, 77)
	s.join(1000)
	for range 8 {
		s.round()
	}
	var victims []Node
	for _, p := range s.reachable() {
		if len(victims) < 10 && s.seed().table.Has(p.client.self) {
			victims = append(victims, p.client.self)
		}
	}
	s.net.loss = 0.05
	attacker := &simProc{addr: "5.0.0.1:6000", from: "5.0.0.1"}
	c := &http.Client{Transport: simLink{s.net, attacker}}
	out, samples := 0, 0
	for round := range 20 {
		if round%5 == 0 {
			t.Logf("DELETE loop, round %d of 20", round)
		}
		for _, v := range victims {
			for range 20 {
				s.net.clock.Add(int64(time.Microsecond)) // spread in time, so that each check is lost or not on its own
				req, _ := http.NewRequest("DELETE", "http://"+s.seed().addr+"/nodes/", strings.NewReader(nodeBody(v)))
				if resp, err := c.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}
		s.round()
		for _, v := range victims {
			samples++
			if !s.seed().table.Has(v) {
				out++
			}
		}
	}
	t.Logf("| a DELETE loop from one address, 5%% loss | victims out of the seed's list %.1f%% of the time (%d of %d) |", 100*float64(out)/float64(samples), out, samples)
	is.True(float64(out) <= 0.05*float64(samples)) // out at most 5% of the time
}

// admitter is a table's rule for who comes in, for TestAttackTableRules.
type admitter interface {
	add(n Node) bool // in the table after the announce
	all() []Node
}

// ourRoom is the seed's own table at the default -m 1000: room by group.
type ourRoom struct{ t *Table }

func (o ourRoom) add(n Node) bool { o.t.AddAnnounced(0, n); return o.t.Has(n) } // every incumbent answers: a crowded newcomer stays out
func (o ourRoom) all() []Node     { return o.t.List() }

// addrman is a model of Bitcoin Core's new table: 1,024 buckets of 64 at
// its real size; an address announced by its own source goes to one of
// the 64 buckets its /16 can reach (a sixteenth of them), a slot picked by
// a keyed hash, and an incumbent that is not terrible (all of them answer
// here) keeps its slot. With 16 buckets it has our table's size, 1,024.
type addrman struct {
	buckets uint64
	slots   map[[2]uint64]Node
}

func keyed(parts ...any) uint64 {
	h := fnv.New64a()
	fmt.Fprint(h, append([]any{"key"}, parts...)...)
	return h.Sum64()
}

func (a addrman) add(n Node) bool {
	g, _ := groupOf(n)
	bucket := keyed(g, keyed(g, g)%(a.buckets/16)) % a.buckets // source group = group: it announces itself
	slot := [2]uint64{bucket, keyed("N", bucket, n) % 64}
	if m, taken := a.slots[slot]; taken {
		return m == n
	}
	a.slots[slot] = n
	return true
}

func (a addrman) all() (nodes []Node) {
	for _, n := range a.slots {
		nodes = append(nodes, n)
	}
	return nodes
}

// geth is a model of go-ethereum's discovery table: 17 buckets of 16 by
// the log distance of a node's ID from ours (IDs are hashes here, 64 bits:
// the attacker does not even mine them), at most 2 per /24 in a bucket and
// 10 in the table; a full bucket sends newcomers to a replacement list,
// used only when an entry fails its check, which none does here.
type geth struct {
	buckets [17][]Node
	per24   map[netip.Prefix]int
}

func (g *geth) add(n Node) bool {
	d := 64 - bits.LeadingZeros64(keyed("self")^keyed(n))
	b := max(d-48, 0)
	net24, _ := n.IP.Prefix(24)
	inBucket := 0
	for _, m := range g.buckets[b] {
		if m == n {
			return true
		}
		if p, _ := m.IP.Prefix(24); p == net24 {
			inBucket++
		}
	}
	if len(g.buckets[b]) >= 16 || inBucket >= 2 || g.per24[net24] >= 10 {
		return false
	}
	g.buckets[b] = append(g.buckets[b], n)
	g.per24[net24]++
	return true
}

func (g *geth) all() (nodes []Node) {
	for _, b := range g.buckets {
		nodes = append(nodes, b...)
	}
	return nodes
}

// TestAttackTableRules runs the arrivals of TestAttack against
// three rules for a seed's table: ours, and models of the two that
// issue 15 names. The attacker announces all its addresses first, and each
// round again those not in; 1,000 honest nodes in 250 groups join; then
// 100 newcomers, each announcing every round until it is in. Ours must
// give the attacker a smaller share of the table, and list more of the
// newcomers within 3 rounds, than either. Only the table is modelled: the
// shares of honest nodes' peers need the whole simulation (TestAttack).
func TestAttackTableRules(t *testing.T) {
	t.Parallel()
	skipUnderRace(t) // a model, and slow under the race detector: .ci/run runs it without
	for _, sc := range []struct{ addrs, groups int }{{10_000, 4}, {1000, 100}} {
		results := map[string][2]float64{}
		for _, rule := range []string{"ours", "addrman", "addrman at 1,024", "geth"} {
			var tbl admitter
			switch rule {
			case "ours":
				mem := memTable(nodeAt("192.0.2.1", seedPort), 1000, 8)
				mem.rng = rand.New(rand.NewPCG(15, 2))
				tbl = ourRoom{mem}
			case "addrman":
				tbl = addrman{1024, map[[2]uint64]Node{}}
			case "addrman at 1,024":
				tbl = addrman{16, map[[2]uint64]Node{}}
			case "geth":
				tbl = &geth{per24: map[netip.Prefix]int{}}
			}
			rng := rand.New(rand.NewPCG(15, 1))
			var attacker, honest, newcomers []Node
			mine := map[Node]bool{}
			for i := range sc.addrs {
				g := i % sc.groups
				n := nodeAt(fmt.Sprintf("5.%d.%d.%d", g, i/sc.groups/250, 1+i/sc.groups%250), 6000)
				attacker, mine[n] = append(attacker, n), true
			}
			for i := range 1100 {
				g := rng.IntN(250)
				n := nodeAt(fmt.Sprintf("%d.%d.%d.%d", 11+g/256, g%256, i>>8&255, i&255), 55000)
				if i < 1000 {
					honest = append(honest, n)
				} else {
					newcomers = append(newcomers, n)
				}
			}
			in := map[Node]bool{}
			round := func(announcers ...[]Node) { // each announces once, in a random order, unless it is in
				var all []Node
				for _, a := range announcers {
					all = append(all, a...)
				}
				rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
				for _, n := range all {
					if !in[n] {
						in[n] = tbl.add(n)
					}
				}
				clear(in)
				for _, n := range tbl.all() {
					in[n] = true
				}
			}
			round(attacker)
			for range 3 {
				round(attacker, honest)
			}
			for range 3 {
				round(attacker, honest, newcomers)
			}
			bad, listed := 0, 0
			for _, n := range tbl.all() {
				if mine[n] {
					bad++
				}
			}
			for _, n := range newcomers {
				if in[n] {
					listed++
				}
			}
			results[rule] = [2]float64{float64(bad) / float64(len(tbl.all())), float64(listed) / float64(len(newcomers))}
			t.Logf("| %d addresses in %d groups | %s | %d entries | attacker %.1f%% | newcomers listed within 3 rounds %.0f%% |",
				sc.addrs, sc.groups, rule, len(tbl.all()), 100*results[rule][0], 100*results[rule][1])
		}
		is := is.New(t)
		for _, other := range []string{"addrman", "addrman at 1,024", "geth"} {
			is.True(results["ours"][0] < results[other][0]) // a smaller share for the attacker
		}
		for _, other := range []string{"addrman at 1,024", "geth"} {
			is.True(results["ours"][1] >= results[other][1]) // and as many newcomers in, or more, at the same size or more
		}
	}
}

// TestSimulationVictimOfALiar: a lying seed, the only seed 10 honest nodes
// know, lists 10,000 ports of one victim address, which answers 200 {} to
// every request, GET /nodes/ included, as a web server might. A node takes
// at most 2 peers at one address, and a list that is not a list shows the
// victim is not a node: once the liar is gone, each node calls the victim
// at most twice a round, and after -f rounds not at all.
func TestSimulationVictimOfALiar(t *testing.T) {
	is := is.New(t)
	s := newSim(t, 66)
	var calls atomic.Int64 // to the victim
	victim := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.WriteString(w, "{}\n")
	})
	var ports []Node
	s.net.mu.Lock()
	for i := range 10_000 {
		n := nodeAt("6.6.6.6", 10_000+i)
		ports = append(ports, n)
		s.net.handlers[n.String()] = victim
	}
	liar := nodeAt("6.7.0.1", seedPort)
	s.net.handlers[liar.String()] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/nodes/" {
			io.WriteString(w, "{}\n")
			return
		}
		size, _ := strconv.Atoi(r.URL.Query().Get("sample"))
		h := fnv.New64a()
		fmt.Fprint(h, r.RemoteAddr, s.net.clock.Load())
		rng := rand.New(rand.NewPCG(h.Sum64(), 5))
		var list []Node
		for range min(max(size, 1), maxSample) {
			list = append(list, ports[rng.IntN(len(ports))])
		}
		json.NewEncoder(w).Encode(list)
	})
	s.net.mu.Unlock()
	nodes := s.join(10)
	for _, p := range nodes {
		p.table.SetSeeds([]Node{liar})
	}
	perRound := func() int64 {
		before := calls.Load()
		s.round()
		return calls.Load() - before
	}
	var during []int64
	for range 5 {
		during = append(during, perRound())
	}
	most := 0 // peers at one address, and in one group, that an honest node holds
	for _, p := range nodes {
		at := map[netip.Addr]int{}
		for _, n := range p.table.List() {
			at[n.IP]++
			most = max(most, at[n.IP])
		}
	}
	s.net.mu.Lock()
	s.net.dead[liar.String()] = true // the liar goes away
	s.net.mu.Unlock()
	var after []int64
	for range 2 * s.k {
		after = append(after, perRound())
	}
	t.Logf("10 nodes whose only seed lists 10,000 ports of one address: calls to it a round %v, "+
		"at most %d peers at that address; then, the liar gone, calls to it a round: %v", during, most, after)
	is.True(most <= maxPerIP) // at most 2 peers at one address
	for _, c := range after {
		is.True(c <= 2*int64(len(nodes))) // at most 2 a node a round once the list is gone
	}
	is.Equal(after[len(after)-1], int64(0)) // and none once the victim showed it is not a node
}
