package main

import (
	"context"
	"log/slog"
	"time"
)

// runSeed runs the seed (the blog's "DNS server"): it keeps the nodes that
// announce themselves, and every round drops those that stop answering.
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
	return serve(ctx, cfg, ln, r.table, r.client.ping, func(ctx context.Context) { r.loop(ctx, time.Duration(cfg.interval), r.seedRound) }, nil, log)
}

// seedRound checks every known node with GET / and removes the dead.
func (r *refresher) seedRound(ctx context.Context) roundStats {
	return roundStats{removed: r.sweep(ctx, r.client.ping)}
}
