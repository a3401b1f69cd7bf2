package main

// The node: its round, the blog's three steps, and what it does at -k.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// runNode runs a node: it finds peers through the seed and through other
// nodes, and every round keeps its table alive and filled to -k.
func runNode(ctx context.Context, cfg config, log *slog.Logger) error {
	seeds, err := bootstrapSeeds(cfg)
	if err != nil {
		return err
	}
	ln, err := listenNode(cfg)
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	r, err := newRefresher(cfg, ln, ".node-"+strconv.Itoa(port), log)
	if err != nil {
		ln.Close()
		return err
	}
	defer r.table.Close()
	r.table.SetSeeds(seeds) // before the first round: a seed may check us as we start
	if len(r.table.Seeds()) == 0 {
		ln.Close()
		return fmt.Errorf("the only seed named is this node itself, %s: give -di and -dp, or another -p",
			r.client.self)
	}
	rounds := func(ctx context.Context) { r.loop(ctx, time.Duration(cfg.interval), r.nodeRound) }
	return serve(ctx, cfg, ln, r, rounds)
}

// nodeRound is the node's round: the blog's three steps, in the order they
// run here, and what a node does once it knows -k peers. The ways a peer
// leaves are listed on Table.drop.
func (r *refresher) nodeRound(ctx context.Context) roundStats {
	r.table.NextRound()
	var s roundStats
	s.removed = r.checkPeers(ctx)
	r.announceToSeeds(ctx)
	if ctx.Err() != nil {
		return s // stopping: the calls left would fail, and say so
	}
	if need := r.need(); need > 0 {
		s.learned = r.findPeers(ctx, need)
	} else {
		s.learned, s.removed = r.atLimit(ctx, s.removed)
	}
	r.told = warnIfUnreachable(r.table, r.client.self, r.told, r.log)
	s.alone = r.table.Len() == 0
	return s
}

// checkPeers is the blog's step 1: check every known peer, and drop those
// that fail -f checks in a row (refresh.go). The check is an announce
// (POST /), not the blog's GET /, so that a peer that lost us learns us
// again; any answer, a refusal (refusal, peers.go) included, shows it alive. A
// peer that refused our announce lately gets GET / instead (backoff.go).
func (r *refresher) checkPeers(ctx context.Context) []Node { return r.sweep(ctx, r.contact("peer")) }

// announceToSeeds is the blog's first contact, POST / to the seed, made
// every round, so that a seed that dropped us learns us again; but not to a
// seed that checked us since our last round (it lists us, checkedby.go), nor
// to one that refused us lately (backoff.go).
func (r *refresher) announceToSeeds(ctx context.Context) {
	forEach(ctx, r.table.Seeds(), func(ctx context.Context, _ int, seed Node) error {
		if r.table.TakeCheckedBy(seed) || r.table.BackingOff(seed) {
			return nil
		}
		return r.contact("seed")(ctx, seed)
	})
}

// need is how many peers the node lacks of -k: a foothold does not count,
// since it is let go at -k (hubs.go).
func (r *refresher) need() int {
	known := r.table.Len()
	if _, ok := r.table.Foothold(); ok {
		known--
	}
	return max(r.enough-known, 0)
}

// findPeers is the blog's steps 3 and 2, in that order: it looks for need
// new peers and returns those it added. First the seeds (the blog's DNS
// server): each gives a random sample of its list, and candidates are
// taken from the samples in turn, so that no one seed supplies them all.
// Then, for whatever the seeds' candidates leave short (they were dead, or
// full), the peers' lists, as the blog's step 2, but one step further:
// the lists of the peers' peers, not the peers' own lists (walk.go). So a
// node also reaches the nodes a full seed does not list.
func (r *refresher) findPeers(ctx context.Context, need int) []Node {
	added := r.learn(ctx, r.samples(ctx, r.table.Seeds(), askPerMissing*need+askExtra), need)
	if short := need - len(added); short > 0 {
		added = append(added, r.walk(ctx, short)...)
	}
	return added
}

// atLimit is what a node does at -k (hubs.go), beside the round's removed:
// one that took none of its peers by their announce (behind NAT nobody can
// announce to it; eclipsed, no honest node does) swaps a peer every round
// for a candidate of the seeds', since nobody but itself can heal a bad
// first sample, and no node depends on these links (10 runs of TestAttack's
// scenario against 1,000 addresses in 100 groups left 3 nodes eclipsed
// when half the swaps came from two hops away, none now); one that found
// at most -k itself tries one more candidate, one round in freshOneIn, so
// that nodes the seeds do not list still gain links. The foothold is let
// go once the node has -k others. It returns the peers it added, and those
// it and the round removed.
func (r *refresher) atLimit(ctx context.Context, removed []Node) ([]Node, []Node) {
	outbound, known := r.table.Outbound(), r.table.Len()
	var learned []Node
	switch {
	case outbound == known:
		learned = r.findPeers(ctx, 1)
		peers := slices.DeleteFunc(r.table.List(), func(n Node) bool { return slices.Contains(learned, n) })
		if len(learned) > 0 && len(peers) > 0 { // the peers may have left meanwhile, with a goodbye
			removed = append(removed, r.remove("swap a peer", peers[r.rng.IntN(len(peers))])...)
		}
	case outbound <= r.enough && r.rng.IntN(freshOneIn) == 0:
		learned = r.tryNewCandidate(ctx)
	}
	if foothold, ok := r.table.Foothold(); ok && r.table.Len() > r.enough {
		removed = append(removed, r.remove("let the foothold go", foothold)...)
	}
	return learned, removed
}

// tryNewCandidate tries one new candidate for a node at -k: one time in
// walkOneIn from two hops away (then from the seeds if that finds none),
// else from the seeds' samples, so that the nodes the seeds list do not
// collect every such link.
func (r *refresher) tryNewCandidate(ctx context.Context) []Node {
	if r.rng.IntN(walkOneIn) == 0 {
		if added := r.walk(ctx, 1); len(added) > 0 {
			return added
		}
	}
	return r.findPeers(ctx, 1)
}

// walk looks for need new peers through nodes two hops away: a few peers
// that answered this round each name one of their own peers at random (a
// hop: not this node, one of its peers, nor one shunned, notnode.go), and
// candidates come from samples of the hops' lists (walk.go).
func (r *refresher) walk(ctx context.Context, need int) []Node {
	skip := func(n Node) bool { return n == r.client.self || r.table.Has(n) || r.table.Shunned(n) }
	gone := func(n Node) bool { return !r.table.Has(n) }
	peers := slices.DeleteFunc(walkFrom(r.answered, r.rng), gone)
	hops := twoHops(r.samples(ctx, peers, walkSample), skip, r.rng)
	return r.learn(ctx, r.samples(ctx, hops, askPerMissing*need+askExtra), need)
}

// samples asks each of from for a random sample of size entries, and
// returns the answers in the order of from. An answer that is not a list
// shows its sender not a node.
func (r *refresher) samples(ctx context.Context, from []Node, size int) [][]Node {
	lists := make([][]Node, len(from))
	forEach(ctx, from, func(ctx context.Context, i int, n Node) error {
		list, err := r.client.list(ctx, n, size)
		if notANode(err) {
			r.table.Shun(n, r.fails)
		}
		if err != nil && ctx.Err() == nil && slices.Contains(r.table.Seeds(), n) { // not when we are stopping
			r.log.Warn("seed did not answer", "seed", n, "err", err)
		}
		lists[i] = list
		return err
	})
	return lists
}

// learn takes candidates from the lists in turn, from one picked at random,
// announces to as many as it needs, and adds those that answer as nodes;
// it returns the peers added. Announcing checks a candidate and introduces
// this node to it with one call. A candidate that refuses us is alive, and
// is kept all the same (behind NAT every one does), but for one that is
// full (409): it already has as many peers as it takes, so lest early
// joiners become hubs, a node takes one only as a foothold, when it knows
// no peer (hubs.go). Each candidate not taken is replaced once, from the
// list it came from while that has candidates left, so that every list
// keeps its share: a seed that lists dead or full nodes does not cede its
// place to another until its sample runs out.
func (r *refresher) learn(ctx context.Context, lists [][]Node, need int) (added []Node) {
	q := r.candidates(lists)
	var try []Node
	var from []int // the list each of try came from
	for i := r.rng.IntN(max(len(lists), 1)); len(try) < need && q.any(); i++ {
		l := i % len(lists)
		if len(q.lists[l]) > 0 {
			if n, _, ok := q.next(l); ok {
				try, from = append(try, n), append(from, l)
			}
		}
	}
	for pass := 0; pass < tries && len(try) > 0; pass++ {
		var mu sync.Mutex
		full := map[Node]bool{}
		ok := forEach(ctx, try, func(ctx context.Context, _ int, n Node) error {
			refused, err := r.reach(ctx, "peer", n)
			mu.Lock()
			defer mu.Unlock()
			full[n] = refused == http.StatusConflict
			if notANode(err) { // a web server, say (notnode.go)
				r.table.Shun(n, r.fails)
			}
			return err
		})
		var alive, spare, again []Node
		var againFrom []int
		for i, n := range try {
			switch {
			case ok[i] && !full[n]:
				alive = append(alive, n)
				continue
			case ok[i]:
				spare = append(spare, n)
			}
			q.spread.add(n, -1) // not taken
			if m, l, more := q.next(from[i]); more {
				again, againFrom = append(again, m), append(againFrom, l)
			}
		}
		var got []Node
		var err error
		if len(alive) == 0 && len(spare) > 0 && r.table.Len() == 0 {
			got, err = r.table.AddFoothold(spare[0]) // alone, and every one is full
		} else {
			got, err = r.table.Add(alive...)
		}
		if err != nil {
			r.log.Warn("not all learned peers were added", "err", err)
		}
		added = append(added, got...)
		r.answered = append(r.answered, got...) // they answered this round too: the walk may ask them
		try, from = again, againFrom
	}
	return added
}

// candidateQueues is, for each list learn takes candidates from, those
// left to try, in order, and how the node's peers and picks spread over
// groups and addresses (groups.go).
type candidateQueues struct {
	lists  [][]Node
	spread *pickSpread
}

// candidates queues each list's entries that may be tried: not this
// process, not known, not shunned (notnode.go), not one that refused us
// in this round (backoff.go: a full one would be taken as a peer if it
// merely answered), each once, with groups taking turns as in a sample
// (groups.go).
func (r *refresher) candidates(lists [][]Node) candidateQueues {
	seen := map[Node]bool{r.client.self: true}
	q := candidateQueues{lists: make([][]Node, len(lists)), spread: newPickSpread(r.table.List())}
	for i, l := range lists {
		for _, n := range balanced(l, len(l), r.rng) {
			if !seen[n] && !r.table.Has(n) && !r.table.Shunned(n) && !r.table.BackingOff(n) {
				seen[n] = true
				q.lists[i] = append(q.lists[i], n)
			}
		}
	}
	return q
}

// any reports whether a candidate is left.
func (q candidateQueues) any() bool {
	return slices.ContainsFunc(q.lists, func(l []Node) bool { return len(l) > 0 })
}

// next takes the next candidate of list, or else of the next list with
// candidates left, and says which list it came from: the first whose
// group the node has none of, as long as one is left in any list, and
// never one whose address has maxPerIP of the node's peers and picks,
// which it drops. The node counts the one it takes.
func (q candidateQueues) next(list int) (Node, int, bool) {
	for _, newGroup := range []bool{true, false} {
		for i := range q.lists {
			l := (list + i) % len(q.lists)
			q.lists[l] = slices.DeleteFunc(q.lists[l], q.spread.full)
			for j, n := range q.lists[l] {
				if newGroup && q.spread.has(n) {
					continue
				}
				q.lists[l] = slices.Delete(q.lists[l], j, j+1)
				q.spread.add(n, 1)
				return n, l, true
			}
		}
	}
	return Node{}, 0, false
}

// contact returns the check of a peer or seed, for sweep and forEach: reach, less the refusal.
func (r *refresher) contact(who string) func(context.Context, Node) error {
	return func(ctx context.Context, n Node) error {
		_, err := r.reach(ctx, who, n)
		return err
	}
}

// reach checks n: an announce, or GET / while n backs off after a refusal.
// err is nil if n answered as a node; refused is then the status it refused
// us with, if it did. It warns when who (the seed, a peer) refuses us for a
// reason about us: then we may stay unlisted until our flags change.
func (r *refresher) reach(ctx context.Context, who string, n Node) (refused int, err error) {
	if r.table.BackingOff(n) {
		return 0, r.client.ping(ctx, n)
	}
	refused, err = r.client.announce(ctx, n)
	if err != nil {
		return 0, err
	}
	r.table.Refused(n, refused == http.StatusForbidden || refused == http.StatusConflict)
	self := r.client.self
	switch refused {
	case http.StatusUnprocessableEntity:
		r.log.Warn(fmt.Sprintf("the %s %s could not reach us at %s; see -a", who, n, self))
	case http.StatusForbidden:
		if seen, ok := r.table.SeenAt(n); ok && seen != self.IP {
			r.log.Warn(fmt.Sprintf("the %s %s refused us: it sees our calls come from %s, not %s; see -a",
				who, n, seen, self.IP))
		} else {
			r.log.Warn(fmt.Sprintf("the %s %s refused us: "+
				"it sees our calls come from another address than %s; see -a", who, n, self))
		}
	case http.StatusConflict: // normal for a peer, which takes a few: worth a word from the seed only
		if who == "seed" {
			r.log.Warn(fmt.Sprintf("the seed %s is full, or has as many nodes from our host as it takes", n))
		}
	}
	return refused, nil
}

// leave tells every peer, and the seeds, that this node is going: a DELETE
// /nodes/ of itself to each, all at once, for at most leaveTimeout. They
// drop it at once instead of at their next round.
func (r *refresher) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	forEach(ctx, append(r.table.List(), r.table.Seeds()...), func(ctx context.Context, _ int, n Node) error {
		return r.client.remove(ctx, n)
	})
}
