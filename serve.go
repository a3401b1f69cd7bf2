package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// serve answers the API for t on ln and runs rounds until ctx is done, then
// stops the rounds, lets requests in flight finish, and returns. check is the
// connect-back check of announces. leave, if not nil, runs once the listener
// is closed, beside the requests still finishing.
func serve(ctx context.Context, cfg config, ln net.Listener, t *Table, check func(context.Context, Node) error, rounds func(context.Context), leave func(), log *slog.Logger) error {
	timeout := time.Duration(cfg.timeout)
	srv := &http.Server{
		Handler:           newAPI(cfg, t, newVerifier(check, timeout, time.Duration(cfg.interval)), hostAddrs(), log),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      timeout + 10*time.Second, // POST / waits for a connect-back check
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	// Requests run under their own context, cancelled at shutdown, so that a
	// connect-back check in flight gives up and its request is still answered.
	requests, stopRequests := context.WithCancel(context.Background())
	defer stopRequests()
	srv.BaseContext = func(net.Listener) context.Context { return requests }
	left := make(chan struct{})
	srv.RegisterOnShutdown(func() { // Shutdown calls it once the listener is closed
		defer close(left)
		if leave != nil {
			leave()
		}
	})
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() { stop(srv.Serve(ln)) }()
	log.Info("started", "role", cfg.role, "address", t.self.String(), "file", t.path)

	rounds(ctx)

	stopRequests()
	shutdown, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Warn("requests still running at exit", "err", err)
		srv.Close()
	}
	<-left
	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}
