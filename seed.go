package main

// The seed, the blog's "DNS server": it keeps the nodes that announce
// themselves, and every round drops those that stop answering.

import (
	"context"
	"log/slog"
	"time"
)

// runSeed runs the seed on -p, the blog's 42020 by default.
func runSeed(ctx context.Context, cfg config, log *slog.Logger) error {
	port := cfg.port
	if port < 0 {
		port = seedPort
	}
	ln, err := listen(cfg.ip, port)
	if err != nil {
		return err
	}
	r, err := newRefresher(cfg, ln, ".seed", log)
	if err != nil {
		ln.Close()
		return err
	}
	defer r.table.Close()
	rounds := func(ctx context.Context) { r.loop(ctx, time.Duration(cfg.interval), r.seedRound) }
	return serve(ctx, cfg, ln, r, rounds)
}

// seedRound is the blog's seed thread: check every known node with GET /
// and remove those that fail -f checks in a row; but timeouts remove at
// most 1 in 100 entries a round (sweepVerdict, refresh.go), and a failure
// of this host's own counts against nobody (ownFaults, ownfaults.go).
func (r *refresher) seedRound(ctx context.Context) roundStats {
	r.table.NextRound()
	return roundStats{removed: r.sweep(ctx, r.client.ping)}
}
