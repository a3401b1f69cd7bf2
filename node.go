package main

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
	r.seeds = seeds
	return serve(ctx, cfg, ln, r.table, r.client.ping, func(ctx context.Context) { r.loop(ctx, time.Duration(cfg.interval), r.nodeRound) }, r.leave, log)
}

// nodeRound is the node's round. Its steps, in the order they run:
//
//  1. check every known peer (sweep) by announcing to it, which also keeps
//     us known there; a peer that refused our announce lately is checked
//     with GET / instead, so refusals are not repeated every round;
//  2. announce to every seed, so that each lists us, but to one that
//     checked us since our last round (it lists us, then), and to one
//     that refused us lately (see backOff);
//  3. while short of -k, find new peers: candidates from every seed's random
//     sample, taken in turn, and two hops away for whatever those leave
//     short. At -k, one round in four still tries one fresh candidate,
//     while it has found at most -k peers itself (those that announced
//     themselves do not count), and a node that no peer announced itself
//     to swaps one every round: so a node whose first sample was bad heals.
//     A full peer taken while alone is let go at -k.
//
// A peer stays as long as it answers as a node (see DESIGN.md).
func (r *refresher) nodeRound(ctx context.Context) roundStats {
	var s roundStats
	r.mu.Lock()
	r.round++
	r.mu.Unlock()
	s.removed = r.sweep(ctx, r.contact("peer"))
	seeds := slices.DeleteFunc(slices.Clone(r.seeds), func(n Node) bool { return n == r.client.self })
	checkers := r.table.TakeCheckers()
	forEach(ctx, seeds, func(ctx context.Context, seed Node) error {
		if r.backingOff(seed) || checkers[seed] {
			return nil
		}
		return r.contact("seed")(ctx, seed)
	})
	known := r.table.Len()
	if r.table.Has(r.foothold) {
		known-- // a full peer taken while alone does not count: it is let go at -k
	}
	switch {
	case known < r.enough:
		s.learned = r.find(ctx, seeds, r.enough-known)
	case r.table.Outbound() == r.table.Len():
		// No peer announced itself to it (behind NAT nobody can; eclipsed,
		// no honest node does), so nobody but itself can heal a bad first
		// sample: every round, a fresh candidate in the place of a random
		// peer. No node depends on these links.
		if s.learned = r.tryNewCandidate(ctx, seeds); len(s.learned) > 0 {
			peers := slices.DeleteFunc(r.table.List(), func(n Node) bool { return n == s.learned[0] })
			gone, _ := r.table.Remove(peers[r.rng.IntN(len(peers))])
			s.removed = append(s.removed, gone...)
		}
	case r.table.Outbound() <= r.enough && r.rng.IntN(4) == 0:
		s.learned = r.tryNewCandidate(ctx, seeds)
	}
	if r.table.Len() > r.enough && r.table.Has(r.foothold) { // lest the nodes the seed lists, each many newcomers' foothold, collect links past 4 x -k
		gone, _ := r.table.Remove(r.foothold)
		s.removed = append(s.removed, gone...)
	}
	r.tellIfUnreachable()
	s.alone = r.table.Len() == 0
	return s
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
	if r.backingOff(n) {
		return 0, r.client.ping(ctx, n)
	}
	refused, err = r.client.announce(ctx, n)
	if err != nil {
		return 0, err
	}
	r.backOff(n, refused == http.StatusForbidden || refused == http.StatusConflict)
	switch self := r.client.self; refused {
	case http.StatusUnprocessableEntity:
		r.log.Warn(fmt.Sprintf("the %s %s could not reach us at %s; see -a", who, n, self))
	case http.StatusForbidden:
		if seen, ok := r.client.seen.by(n); ok && seen.String() != self.IP {
			r.log.Warn(fmt.Sprintf("the %s %s refused us: it sees our calls come from %s, not %s; see -a", who, n, seen, self.IP))
		} else {
			r.log.Warn(fmt.Sprintf("the %s %s refused us: it sees our calls come from another address than %s; see -a", who, n, self))
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
	to := slices.DeleteFunc(append(r.table.List(), r.seeds...), func(n Node) bool { return n == r.client.self })
	forEach(ctx, to, r.client.remove)
}

// find looks for need new peers and returns those it added. Each seed
// gives a random sample of its list; candidates are taken from the samples
// in turn, so that no one seed supplies them all. Whatever the seeds'
// candidates leave short (they were dead, or full), the peers' peers make
// up (see walk): so a node reaches the nodes a full seed does not list.
func (r *refresher) find(ctx context.Context, seeds []Node, need int) []Node {
	added := r.learn(ctx, r.samples(ctx, seeds, 2*need+2), need)
	if short := need - len(added); short > 0 {
		added = append(added, r.walk(ctx, short)...)
	}
	return added
}

// tryNewCandidate tries one tryNewCandidate candidate for a node at -k: from the seeds' samples
// or, as often, two hops away (then from the seeds if that finds none), so
// that the nodes the seeds list do not collect every tryNewCandidate link.
func (r *refresher) tryNewCandidate(ctx context.Context, seeds []Node) []Node {
	if r.rng.IntN(2) == 0 {
		if added := r.walk(ctx, 1); len(added) > 0 {
			return added
		}
	}
	return r.find(ctx, seeds, 1)
}

// samples asks each of from for a random sample of size entries, and
// returns the answers in the order of from.
func (r *refresher) samples(ctx context.Context, from []Node, size int) [][]Node {
	lists := make([][]Node, len(from))
	forEach(ctx, from, func(ctx context.Context, n Node) error {
		list, err := r.client.list(ctx, n, size)
		if err != nil && slices.Contains(r.seeds, n) {
			r.log.Warn("seed did not answer", "seed", n, "err", err)
		}
		lists[slices.Index(from, n)] = list
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
// no peer. Each candidate not taken is replaced once, from its own list
// while it has candidates left, so that every list keeps its share: a
// seed that lists dead or full nodes does not cede its place to another
// until its sample runs out.
func (r *refresher) learn(ctx context.Context, lists [][]Node, need int) (added []Node) {
	seen := map[Node]bool{r.client.self: true}
	queues := make([][]Node, len(lists))
	for i, l := range lists {
		for _, n := range balanced(l, len(l), r.rng) { // groups take turns, as in a sample
			if !seen[n] && !r.table.Has(n) && r.round >= r.shunned[n] {
				seen[n] = true
				queues[i] = append(queues[i], n)
			}
		}
	}
	next := func(list int) (Node, int, bool) { // from list, or else from the next list with candidates left
		for i := range queues {
			if l := (list + i) % len(queues); len(queues[l]) > 0 {
				n := queues[l][0]
				queues[l] = queues[l][1:]
				return n, l, true
			}
		}
		return Node{}, 0, false
	}
	var try []Node
	var from []int // the list each of try came from
	for i := r.rng.IntN(max(len(lists), 1)); len(try) < need && slices.ContainsFunc(queues, func(q []Node) bool { return len(q) > 0 }); i++ {
		if l := i % len(lists); len(queues[l]) > 0 {
			n, _, _ := next(l)
			try, from = append(try, n), append(from, l)
		}
	}
	for pass := 0; pass < 2 && len(try) > 0; pass++ {
		var mu sync.Mutex
		full := map[Node]bool{}
		ok := forEach(ctx, try, func(ctx context.Context, n Node) error {
			refused, err := r.reach(ctx, "peer", n)
			mu.Lock()
			defer mu.Unlock()
			full[n] = refused == http.StatusConflict
			if notANode(err) { // a web server, say: not taken from any list for -f rounds
				r.shunned[n] = r.round + r.fails + 1
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
			if m, l, more := next(from[i]); more {
				again, againFrom = append(again, m), append(againFrom, l)
			}
		}
		if len(alive) == 0 && len(spare) > 0 && r.table.Len() == 0 {
			alive = spare[:1] // alone, and every one is full: a foothold
			r.foothold = spare[0]
		}
		got, err := r.table.Add(alive...)
		if err != nil {
			r.log.Warn("not all learned peers were added", "err", err)
		}
		added = append(added, got...)
		try, from = again, againFrom
	}
	return added
}
