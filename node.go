package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"syscall"
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

// listenNode listens on -p, or else on a random port in 50000-60000.
func listenNode(cfg config) (net.Listener, error) {
	if cfg.port >= 0 {
		return net.Listen("tcp", net.JoinHostPort(cfg.ip, strconv.Itoa(cfg.port)))
	}
	return listenRandom(cfg.ip, func() int { return 50000 + rand.IntN(10001) })
}

// listenRandom listens on ip at a port from pick. The node's range overlaps
// Linux's ephemeral ports (32768-60999), so a port may be taken: then it
// picks another.
func listenRandom(ip string, pick func() int) (net.Listener, error) {
	var err error
	for range 50 {
		var ln net.Listener
		ln, err = net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(pick())))
		if !errors.Is(err, syscall.EADDRINUSE) {
			return ln, err
		}
	}
	return nil, fmt.Errorf("no free port found: %w", err)
}

// nodeRound is the node's round: the blog's three steps, with the seed asked
// before the peers. Steps 2 and 3 look for peers only while the node knows
// fewer than r.limit, and ask for a random sample of a few times what it
// lacks, not whole lists: so a join costs O(k), and refills come from fresh
// random picks rather than from neighbours' neighbours, which would close
// triangles and cluster the overlay.
func (r *refresher) nodeRound(ctx context.Context) roundStats {
	var s roundStats
	// 1. Check the known peers by announcing to them, so they learn us too.
	s.removed = r.sweep(ctx, r.announce("peer"))

	// 3. Announce to the seeds, in order, until one answers, and take a
	// sample of its list while still short. Unlike the blog this runs every
	// round, so a seed that dropped the node after a passing failure learns
	// it again.
	asked := false
	for _, seed := range r.seeds {
		if seed == r.client.self {
			continue
		}
		announced := r.announce("seed")(ctx, seed) == nil
		if need := r.limit - r.table.Len(); need > 0 {
			learned, err := r.client.list(ctx, seed, 2*need+2)
			if err != nil {
				r.log.Warn("seed did not answer", "seed", seed, "err", err)
				continue
			}
			s.learned = append(s.learned, r.learn(ctx, learned)...)
			asked = true
			break
		}
		if announced {
			break
		}
	}

	// 2. Short, and no seed answered: samples of the peers' lists. Not when
	// a seed did: neighbours' neighbours close triangles, and a network that
	// refills from them clusters.
	if need := r.limit - r.table.Len(); need > 0 && !asked {
		var mu sync.Mutex
		var learned []Node
		forEach(ctx, r.table.List(), func(ctx context.Context, n Node) error {
			list, err := r.client.list(ctx, n, need)
			mu.Lock()
			defer mu.Unlock()
			learned = append(learned, list...)
			return err
		})
		s.learned = append(s.learned, r.learn(ctx, learned)...)
	}
	s.alone = r.table.Len() == 0
	return s
}

// announce returns a check that announces this node to a peer, and warns
// when who (the seed, a peer) refuses it for a reason about this node: in
// that case the node is likely to stay alone until its flags change.
func (r *refresher) announce(who string) func(context.Context, Node) error {
	return func(ctx context.Context, n Node) error {
		err := r.client.announce(ctx, n)
		var refused *peerError
		if !errors.As(err, &refused) {
			return err
		}
		switch self := r.client.self; refused.status {
		case http.StatusUnprocessableEntity:
			r.log.Warn(fmt.Sprintf("the %s %s could not reach us at %s; see -a", who, n, self))
		case http.StatusForbidden:
			r.log.Warn(fmt.Sprintf("the %s %s refused us: it sees our calls come from another address than %s; see -a", who, n, self))
		case http.StatusConflict: // normal for a peer, which takes a few: worth a word from the seed only
			if who == "seed" {
				r.log.Warn(fmt.Sprintf("the seed %s is full, or has as many nodes from our host as it takes", n))
			}
		}
		return err
	}
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

// learn adds candidates that answer an announce, until the node knows
// r.limit peers, and returns those it added. Announcing checks a candidate
// and introduces this node to it with one call, so both sides learn each
// other at once; a dead node in someone's stale list is never taken back.
// It announces to as many as it lacks; those that refuse (a peer with
// 2 × -k peers takes no more) are replaced next round, from a new sample,
// not now: the only peers with room at once are those that joined just
// before, and linking to them clusters the overlay (see DESIGN.md).
func (r *refresher) learn(ctx context.Context, candidates []Node) []Node {
	need := r.limit - r.table.Len()
	var fresh []Node
	seen := map[Node]bool{r.client.self: true}
	for _, n := range candidates {
		if !seen[n] && !r.table.Has(n) {
			seen[n] = true
			fresh = append(fresh, n)
		}
	}
	rand.Shuffle(len(fresh), func(i, j int) { fresh[i], fresh[j] = fresh[j], fresh[i] })
	fresh = fresh[:min(max(need, 0), len(fresh))]
	ok := forEach(ctx, fresh, r.announce("peer"))
	var alive []Node
	for i, n := range fresh {
		if ok[i] {
			alive = append(alive, n)
		}
	}
	added, err := r.table.Add(alive...)
	if err != nil {
		r.log.Warn("not all learned peers were added", "err", err)
	}
	return added
}
