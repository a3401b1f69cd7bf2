package main

// serve runs a process: its API beside its rounds, until it stops.

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// serve answers the API of r's table on ln and runs rounds until ctx is
// done, then stops the rounds, lets requests in flight finish, and returns.
// A node then says goodbye (refresher.leave) once the listener is closed,
// beside the requests still finishing.
func serve(ctx context.Context, cfg config, ln net.Listener, r *refresher,
	rounds func(context.Context)) error {
	timeout := time.Duration(cfg.timeout)
	checks := newQuota(r.client.ping, timeout)
	srv := &http.Server{
		Handler:           newAPI(cfg, r.table, checks, r.log).handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      timeout + writeSlack, // POST / waits for a connect-back check
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeader,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
	}
	// Requests run under their own context, cancelled at shutdown, so that a
	// connect-back check in flight gives up and its request is still answered.
	requests, stopRequests := context.WithCancel(context.Background())
	defer stopRequests()
	srv.BaseContext = func(net.Listener) context.Context { return requests }
	left := make(chan struct{})
	srv.RegisterOnShutdown(func() { // Shutdown calls it once the listener is closed
		defer close(left)
		if cfg.role == "node" {
			r.leave()
		}
	})
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() { stop(srv.Serve(boundedListener{ln, checks})) }()
	r.log.Info("started", "role", cfg.role, "address", r.table.self.String(), "file", r.table.path)

	rounds(ctx)

	stopRequests()
	shutdown, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		r.log.Warn("requests still running at exit", "err", err)
		srv.Close()
	}
	<-left
	err := context.Cause(ctx)
	if !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	r.log.Info("stopped")
	return nil
}
