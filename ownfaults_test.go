package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/matryer/is"
)

// failingDials makes every call of c's that fails fail with errno, or
// calls go out as usual while fails returns false for their address.
func failingDials(c *peerClient, fails func(addr string) bool, errno syscall.Errno) {
	transport := c.http.Transport.(*http.Transport)
	dial := transport.DialContext
	transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if fails(addr) {
			return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", errno)}
		}
		return dial(ctx, network, addr)
	}
}

// TestOurFailuresRemoveNobody: a seed whose every check fails because it
// is out of descriptors, or because it has no route to any peer, removes
// none of its 10 live nodes in 4 rounds and says why once; a peer that
// alone has no route is its own fault, and leaves after -f rounds, as
// does the only peer of a table of one (a dead host on our link).
func TestOurFailuresRemoveNobody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		errno    syscall.Errno
		peers    int
		failing  int // of the peers
		wantKept int
	}{
		{"out of descriptors", syscall.EMFILE, 10, 10, 10},
		{"out of descriptors, system-wide", syscall.ENFILE, 10, 10, 10},
		{"the address to call from gone", syscall.EADDRNOTAVAIL, 10, 10, 10},
		{"no route to any peer", syscall.ENETUNREACH, 10, 10, 10},
		{"no route to most peers", syscall.EHOSTUNREACH, 10, 6, 10},
		{"no route to one peer", syscall.EHOSTUNREACH, 10, 1, 9},
		{"no route to the only peer", syscall.EHOSTUNREACH, 1, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			peers := startPeers(t, tc.peers, config{max: 10})
			seed := startPeer(t, "127.0.0.1", config{role: "seed", max: 10, fails: 2})
			var down []string
			for i, p := range peers {
				_, err := seed.table.Add(p.self())
				is.NoErr(err)
				if i < tc.failing {
					down = append(down, p.self().String())
				}
			}
			var on atomic.Bool
			on.Store(true)
			failingDials(seed.client, func(addr string) bool {
				return on.Load() && slices.Contains(down, addr)
			}, tc.errno)
			var log syncBuffer
			seed.log = slog.New(slog.NewTextHandler(&log, nil))
			for range 4 {
				seed.seedRound(context.Background())
			}
			is.Equal(seed.table.Len(), tc.wantKept) // only a peer's own fault removes it
			said := strings.Count(log.String(), "removed nobody")
			if tc.wantKept == tc.peers {
				is.Equal(said, 1) // said once
				on.Store(false)
				seed.seedRound(context.Background())
				is.True(strings.Contains(log.String(), "calls out again")) // and when it is over
			} else {
				is.Equal(said, 0) // a peer's fault is not ours to say
			}
		})
	}
}

// TestAnnounceCheckedInOurFault: an announce whose connect-back check
// fails because this host is out of descriptors gets 503, not 422, and is
// checked again, not refused from memory, once calls go out again.
func TestAnnounceCheckedInOurFault(t *testing.T) {
	is := is.New(t)
	var out atomic.Bool
	out.Store(true)
	check := func(ctx context.Context, n Node) error {
		if out.Load() {
			return failure(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", syscall.EMFILE)})
		}
		return nil
	}
	h := remoteHandler(newTable(t, 10), check)
	n := nodeAt("203.0.113.5", 5000)
	w := ask(h, "POST", "/", "203.0.113.5:4000", nodeBody(n))
	is.Equal(w.Code, 503)                        // our fault, not the caller's
	is.Equal(w.Header().Get("Retry-After"), "1") // try again soon
	out.Store(false)
	is.Equal(ask(h, "POST", "/", "203.0.113.5:4000", nodeBody(n)).Code, 200) // checked again: taken
}
