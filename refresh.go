package main

// The rounds both roles run: the sweep that checks every peer (the blog's
// step 1), the loop that runs a round about every -u, and the bounded
// fan-out they share. The node's round is in node.go, the seed's in seed.go.

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// forEach calls fn for every node, with its index in nodes, at most
// maxInFlight at once, and reports which calls succeeded, in the order of
// nodes. It keeps no error: a sweep of 10,000 dead peers should not hold
// 10,000 of them until it ends. Its workers take the nodes one after
// another, so that each call does not start a goroutine of its own and
// grow its stack again.
func forEach(ctx context.Context, nodes []Node, fn func(context.Context, int, Node) error) (ok []bool) {
	ok = make([]bool, len(nodes))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(maxInFlight, len(nodes)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ok[i] = fn(ctx, i, nodes[i]) == nil
			}
		}()
	}
	for i := range nodes {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	return ok
}

// refresher runs the rounds of one role over its table.
type refresher struct {
	table    *Table
	client   *peerClient
	enough   int        // -k: the peers a node looks for
	fails    int        // -f: failed checks in a row that remove a peer
	rng      *rand.Rand // the round's random choices; seeded in the simulation
	log      *slog.Logger
	answered []Node // the peers that answered this round: its sweep, and those it learned

	aloneWait time.Duration // the last wait while alone (loop only)
	ownFault  string        // what the last round said of this host's own faults (ownfaults.go)
	told      netip.Addr    // the address the NAT warning named last (nat.go)
}

// roundStats is what one round did, for its log line.
type roundStats struct {
	learned, removed []Node
	alone            bool // a node that knows no peer: retry soon, not in -u
}

// newRefresher opens the table in -d (or defaultDir) for the process listening on ln.
func newRefresher(cfg config, ln net.Listener, defaultDir string,
	log *slog.Logger) (*refresher, error) {
	self := Node{IP: cfg.advertise, Port: ln.Addr().(*net.TCPAddr).AddrPort().Port()}
	t, err := openTable(cmp.Or(cfg.dir, defaultDir), cfg.file, self, cfg.max, cfg.hostMax)
	if err != nil {
		return nil, err
	}
	return newProcess(cfg, t, newPeerClient(time.Duration(cfg.timeout), self), log), nil
}

// newProcess is the rounds of a process with table t that calls out
// through c, as the flags say: the roles and the simulation both make
// their processes with it. What c's calls hear of our address goes to t.
func newProcess(cfg config, t *Table, c *peerClient, log *slog.Logger) *refresher {
	c.saw = t.Saw
	return &refresher{table: t, client: c, enough: cfg.enough, fails: cfg.fails,
		rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), log: log}
}

// sweep checks every entry with check and removes, and returns, those
// that have now failed r.fails times in a row. Every one, every round: a
// call from a node's address, an announce say, proves nothing about its
// port, and whoever shares the address (a NAT, an attacker) could keep a
// dead entry alive with it. An answer that no node gives keeps the address
// off every list for -f rounds, and a shunned entry fails without a call
// (notnode.go); a failure of this host's own counts against nobody
// (ownfaults.go); timeouts remove few (sweepVerdict).
func (r *refresher) sweep(ctx context.Context, check func(context.Context, Node) error) []Node {
	nodes := r.table.List()
	outcomes := make([]outcome, len(nodes))
	forEach(ctx, nodes, func(ctx context.Context, i int, n Node) error {
		if r.table.Shunned(n) {
			outcomes[i] = failed
			return nil
		}
		err := check(ctx, n)
		outcomes[i] = outcomeOf(err)
		if notANode(err) {
			r.table.Shun(n, r.fails)
		}
		return err
	})
	if ctx.Err() != nil {
		return nil // shutting down: a cancelled check says nothing about the peer
	}
	r.ownFault = sayOwnFaults(r.log, r.ownFault, ownFaults(outcomes))
	gone := r.table.Checked(nodes, outcomes, r.fails)
	r.answered = nil
	for i, n := range nodes {
		if outcomes[i] == answered {
			r.answered = append(r.answered, n)
		}
	}
	return r.remove("remove dead peers", gone...)
}

// sweepVerdict decides who leaves after a round's checks: the entries of
// records whose failures in a row have reached fails. But a check that
// timed out may say more about us than about the peer (an overloaded seed
// times out on live nodes), so timeouts remove at most 1 in timeoutShare
// of the entries a round, at least one, at random; the others stay,
// failing, for later rounds. It returns what that cap leaves to DELETEs
// until the next round (silence.go). A refused call or a wrong answer is
// not ours: those are not capped.
func sweepVerdict(records []*peer, outcomes []outcome, fails int,
	rng *rand.Rand) (gone []Node, lateLeft int) {
	var slow []Node
	for i, p := range records {
		switch {
		case outcomes[i] == answered || outcomes[i] == ourFault || p.fails < fails:
		case outcomes[i] == late:
			slow = append(slow, p.Node)
		default:
			gone = append(gone, p.Node)
		}
	}
	rng.Shuffle(len(slow), func(i, j int) { slow[i], slow[j] = slow[j], slow[i] })
	lateCap := max(1, len(records)/timeoutShare)
	took := min(len(slow), lateCap)
	return append(gone, slow[:took]...), lateCap - took
}

// remove removes nodes from the table, saying why in the log if the table
// cannot be saved: they are gone from memory all the same, and go to disk
// with the next write that succeeds.
func (r *refresher) remove(why string, nodes ...Node) []Node {
	removed, err := r.table.Remove(nodes...)
	if err != nil {
		r.log.Error(why, "err", err)
	}
	return removed
}

// loop runs round at once and then about every interval until ctx is
// done, logging each. Rounds never overlap, and a round that overruns the
// interval delays the next one rather than letting them pile up. Each log
// line names the peers the round learned and removed, and counts those that
// others added or removed through the API since the last round (announces,
// operator calls), so that known = before + learned + announced - removed;
// failing counts the peers kept although their last check failed (-f).
func (r *refresher) loop(ctx context.Context, interval time.Duration,
	round func(context.Context) roundStats) {
	before := r.table.Len()
	first := []any{"loaded", before} // from the file: the first round's known adds up too
	for {
		start := time.Now()
		s := round(ctx)
		if ctx.Err() != nil {
			return
		}
		known := r.table.Len()
		line := append(first, "known", known, "learned", names(s.learned), "removed", names(s.removed),
			"announced", known-before-len(s.learned)+len(s.removed), "failing", r.table.Failing(),
			"took", time.Since(start).Round(time.Millisecond))
		r.log.Info("round", line...)
		before, first = known, nil
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(0, r.wait(s, interval)-time.Since(start))):
		}
	}
}

// wait is the time from the start of a round to the start of the next:
// interval give or take jitter (10%), at random, so that processes started together,
// or brought back together by a seed's outage, drift apart. While rounds
// end alone it is shorter: aloneRetry, then twice that, and so on up to
// interval, so that a node started before its seed joins soon after the
// seed starts.
func (r *refresher) wait(s roundStats, interval time.Duration) time.Duration {
	if !s.alone {
		r.aloneWait = 0
		return time.Duration(float64(interval) * (1 - jitter + 2*jitter*r.rng.Float64()))
	}
	r.aloneWait = min(max(2*r.aloneWait, aloneRetry), interval)
	return r.aloneWait
}

// answerHolds is how long an answer to a check holds for a DELETE
// (answering, silence.go): until the next round's check of the node must have
// come, the most that rounds are apart (interval and its jitter) and the
// time that check may take (timeout). So DELETEs between two rounds cost
// no check of their own.
func answerHolds(interval, timeout time.Duration) time.Duration {
	return time.Duration(float64(interval)*(1+jitter)) + timeout
}

// names lists nodes for a log line: at most logNames addresses, then how many more.
func names(nodes []Node) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, n := range nodes {
		if i == logNames {
			fmt.Fprintf(&b, " +%d more", len(nodes)-i)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(n.String())
	}
	return b.String() + "]"
}
