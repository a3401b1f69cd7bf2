// Command peerdisc is the peer-discovery layer of a teaching blockchain: a
// seed that keeps a list of live nodes, and nodes that find each other
// through it. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode maps run's error to the exit status: 2 for a bad command line, as flag does.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintln(stderr, "error:", err)
	return 1
}

// run parses the command line and runs the chosen role until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(progName(args[0]), args[1:], stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	switch cfg.role {
	case "seed":
		return runSeed(ctx, cfg, log)
	case "map":
		return runMap(ctx, cfg, stdout, log)
	}
	return runNode(ctx, cfg, log)
}
