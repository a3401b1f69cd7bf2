package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestRoundDropsClosedAndHungPeers(t *testing.T) {
	for _, role := range []string{"seed", "node"} {
		t.Run(role, func(t *testing.T) {
			is := is.New(t)
			live := startPeers(t, 2, config{enough: 10, max: 10})
			p := startPeer(t, "127.0.0.1", config{enough: 1, max: 10, timeout: seconds(300 * time.Millisecond)})
			dead, hung := deadAddr(t), hungAddr(t).node
			_, err := p.table.Add(dead, live[0].self(), hung, live[1].self())
			is.NoErr(err)

			var s roundStats
			if role == "seed" {
				s = p.seedRound(context.Background())
			} else {
				s = p.nodeRound(context.Background())
			}

			is.Equal(len(s.removed), 2)                                      // closed and hung removed
			is.Equal(p.table.List(), []Node{live[0].self(), live[1].self()}) // live kept, in order
			if role == "node" {
				is.True(live[0].table.Has(p.self())) // the check announced the node to its peers
			}
		})
	}
}

// TestSweepBoundsRemovalsForTimeouts: 300 entries that time out are
// removed 1 in 100 of the table a round, since timeouts may be the
// checker's own fault; 300 that refuse go at once.
func TestSweepBoundsRemovalsForTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name                string
		err                 error
		wantFirst, wantThen int
	}{
		{"timed out", failure(context.DeadlineExceeded), 4, 3}, // 1 in 100 of 400 entries, then of 396
		{"refused", failure(syscall.ECONNREFUSED), 300, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			p := startPeer(t, "127.0.0.1", config{max: 1000, fails: 1})
			nodes := distinctNodes(400)
			_, err := p.table.Add(nodes...)
			is.NoErr(err)
			failing := map[Node]bool{}
			for _, n := range nodes[:300] {
				failing[n] = true
			}
			check := func(_ context.Context, n Node) error {
				if failing[n] {
					return tc.err
				}
				return nil
			}
			is.Equal(len(p.sweep(context.Background(), check)), tc.wantFirst)
			is.Equal(len(p.sweep(context.Background(), check)), tc.wantThen) // the rest in later rounds
		})
	}
}

func TestFailThreshold(t *testing.T) {
	is := is.New(t)
	var down atomic.Bool
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "{}")
	}))
	defer flaky.Close()
	node := nodeOf(t, flaky.URL)
	p := startPeer(t, "127.0.0.1", config{fails: 3, max: 10})
	_, err := p.table.Add(node)
	is.NoErr(err)

	down.Store(true)
	p.seedRound(context.Background())
	p.seedRound(context.Background())
	is.True(p.table.Has(node)) // two failures in a row: still listed
	down.Store(false)
	p.seedRound(context.Background())
	down.Store(true)
	p.seedRound(context.Background())
	p.seedRound(context.Background())
	is.True(p.table.Has(node)) // a success resets the count
	p.seedRound(context.Background())
	is.True(!p.table.Has(node)) // third failure in a row removes it
}

func TestForEachRunsConcurrentlyWithABound(t *testing.T) {
	t.Run("all at once when few", func(t *testing.T) {
		is := is.New(t)
		// Each call waits for all the others to start: run one at a time, they would never finish.
		nodes := distinctNodes(20)
		var started sync.WaitGroup
		started.Add(len(nodes))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ok := forEach(ctx, nodes, func(ctx context.Context, _ int, n Node) error {
			started.Done()
			done := make(chan struct{})
			go func() { started.Wait(); close(done) }()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		is.True(!slices.Contains(ok, false)) // every call saw all the others running
	})
	t.Run("never more than the bound", func(t *testing.T) {
		is := is.New(t)
		var running, most atomic.Int32
		release := make(chan struct{})
		go func() {
			deadline := time.Now().Add(10 * time.Second) // then release them anyway: the bound check below fails
			for running.Load() < maxInFlight && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond) // polling for the calls to fill the slots
			}
			close(release)
		}()
		forEach(context.Background(), distinctNodes(500), func(ctx context.Context, _ int, n Node) error {
			now := running.Add(1)
			defer running.Add(-1)
			for {
				m := most.Load()
				if now <= m || most.CompareAndSwap(m, now) {
					break
				}
			}
			<-release
			return nil
		})
		is.Equal(most.Load(), int32(maxInFlight)) // bound reached, never passed
	})
}

func TestLoopSleepsBetweenRounds(t *testing.T) {
	is := is.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a loop that waits far longer than -u fails here
	defer cancel()
	var starts []time.Time
	p := startPeer(t, "127.0.0.1", config{})
	p.loop(ctx, 100*time.Millisecond, func(context.Context) roundStats {
		if starts = append(starts, time.Now()); len(starts) == 4 {
			cancel()
		}
		return roundStats{}
	})
	is.Equal(len(starts), 4) // rounds every -u, not once
	for i := 1; i < len(starts); i++ {
		is.True(starts[i].Sub(starts[i-1]) >= 90*time.Millisecond) // at least -u less 10% between rounds: no busy loop
	}
}

func TestRoundLogNamesPeersAndAddsUp(t *testing.T) {
	is := is.New(t)
	p := startPeer(t, "127.0.0.1", config{max: 10})
	var logs syncBuffer
	p.log = slog.New(slog.NewTextHandler(&logs, nil))
	old, learned, announced := nodeAt("127.0.0.5", 5), nodeAt("127.0.0.6", 6), nodeAt("127.0.0.7", 7)
	_, err := p.table.Add(old)
	is.NoErr(err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rounds := 0
	p.loop(ctx, time.Millisecond, func(context.Context) roundStats {
		if rounds++; rounds > 1 {
			cancel()
			return roundStats{}
		}
		_, err := p.table.Add(announced) // as POST / from another process would
		is.NoErr(err)
		got, err := p.table.Add(learned)
		is.NoErr(err)
		gone, err := p.table.Remove(old)
		is.NoErr(err)
		return roundStats{learned: got, removed: gone}
	})
	line := logs.String()
	is.True(strings.Contains(line, "msg=round loaded=1 known=2 ")) // 1 loaded + 1 learned + 1 announced - 1 removed
	is.True(strings.Contains(line, "learned=[127.0.0.6:6]"))       // names what it learned
	is.True(strings.Contains(line, `removed=[127.0.0.5:5]`))       // and what it removed
	is.True(strings.Contains(line, "announced=1 "))                // and counts what others added
	is.Equal(strings.Count(line, "msg=round"), 1)                  // one line per round
}

func TestNamesIsBounded(t *testing.T) {
	is := is.New(t)
	is.Equal(names(nil), "[]")
	is.Equal(names(distinctNodes(10)), "[192.0.2.1:1000 192.0.2.2:1001 192.0.2.3:1002 192.0.2.4:1003 192.0.2.5:1004 192.0.2.6:1005 192.0.2.7:1006 192.0.2.8:1007 +2 more]")
}

// TestAnnounceIsNotACheck: five hosts each announce their own entry every
// round, from its address, while nothing answers at its port. A call from
// an address proves nothing about the port: the seed checks every entry,
// and drops all five after -f rounds.
func TestAnnounceIsNotACheck(t *testing.T) {
	needAliases(t)
	is := is.New(t)
	seed := startPeer(t, "127.0.0.1", config{max: 10, fails: 2})
	dead := deadAddr(t).Port
	var entries []Node
	for i := range 5 {
		n := nodeAt(fmt.Sprintf("127.0.0.%d", 5+i), dead)
		entries = append(entries, n)
		_, err := seed.table.Add(n)
		is.NoErr(err)
	}
	announceAll := func() {
		for _, n := range entries {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: n.IP.AsSlice()}}
			c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
			resp, err := c.Post("http://"+seed.self().String()+"/", "application/json", strings.NewReader(fmt.Sprintf(`{"ip_address": %q, "port": %d}`, n.IP, n.Port)))
			is.NoErr(err)
			resp.Body.Close()
			is.Equal(resp.StatusCode, 200) // known: taken as it is
		}
	}
	for range 2 {
		announceAll()
		seed.seedRound(context.Background())
	}
	is.Equal(seed.table.Len(), 0) // every dead port dropped, although its address kept calling
}

func TestWaitIsJitteredAndBacksOffWhileAlone(t *testing.T) {
	is := is.New(t)
	p := startPeer(t, "127.0.0.1", config{})
	seen := map[time.Duration]bool{}
	for range 100 {
		d := p.wait(roundStats{}, time.Minute)
		is.True(d >= 54*time.Second && d <= 66*time.Second) // within 10%
		seen[d] = true
	}
	is.True(len(seen) > 50) // and not the same each time
	var alone []time.Duration
	for range 8 {
		alone = append(alone, p.wait(roundStats{alone: true}, 20*time.Second))
	}
	// doubles from aloneRetry, stops at the interval
	is.Equal(alone, []time.Duration{1e9, 2e9, 4e9, 8e9, 16e9, 20e9, 20e9, 20e9})
	d := p.wait(roundStats{}, 20*time.Second)
	is.True(d >= 18*time.Second && d <= 22*time.Second)                           // not alone: the interval again
	is.Equal(p.wait(roundStats{alone: true}, 20*time.Second), time.Duration(1e9)) // and the backoff starts over
}

func TestAloneNodeRetriesSooner(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	p := startPeer(t, "127.0.0.1", config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	rounds := 0
	go func() {
		defer close(done)
		p.loop(ctx, time.Hour, func(context.Context) roundStats {
			if rounds++; rounds == 2 {
				cancel()
			}
			return roundStats{alone: true}
		})
	}()
	select {
	case <-done: // aloneRetry (1 s) between the rounds, not an hour
	case <-time.After(10 * time.Second):
		t.Fatal("an alone node waited the whole interval")
	}
	is.Equal(rounds, 2)
}
