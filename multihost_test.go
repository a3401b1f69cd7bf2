//go:build linux

package main

// The network across real hosts (see lab_test.go): a seed and nodes as real
// processes, each on a host of its own, over IPv4 and over IPv6.

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestMultiHost(t *testing.T) {
	for _, family := range []string{"IPv4", "IPv6"} {
		t.Run(family, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			l := newLab(t, 6) // h0 the seed, h1-h4 nodes, h5 another host
			addr := func(h *labHost) string {
				if family == "IPv6" {
					return h.v6
				}
				return h.v4
			}
			all := map[string]string{"IPv4": "0.0.0.0", "IPv6": "::"}[family]
			op, outsider := l.hosts[0], l.hosts[5]

			start := time.Now()
			seed := l.hosts[0].start("-role=seed", "-i", addr(l.hosts[0]),
				"-p", "0", "-u", "1", "-t", "1", "-d", "seed")
			seedFlags := []string{"-di", seed.addr.IP.String(), "-dp", strconv.Itoa(int(seed.addr.Port)),
				"-u", "1", "-t", "1", "-p", "0", "-d", "node"}
			var nodes []*proc
			for _, h := range l.hosts[1:4] {
				nodes = append(nodes, h.start(append([]string{"-role=node", "-i", addr(h)}, seedFlags...)...))
			}
			// h4 listens on every interface and advertises its second address,
			// as on a host with several: its calls must come from that one.
			second := l.hosts[4].secondAddress(addr(l.hosts[4]))
			bound := l.hosts[4].start(append([]string{"-role=node", "-i", all, "-a", second}, seedFlags...)...)
			nodes = append(nodes, bound)
			is.Equal(bound.addr.IP.String(), second) // it announces the advertised address
			// everyone reports whether every process but skip lists exactly the nodes that want picks.
			everyone := func(skip *proc, want func(n Node) bool) func() bool {
				return func() bool {
					for _, p := range append(nodes, seed) {
						for _, n := range nodes {
							if p != skip && n != p && want(n.addr) != slices.Contains(op.list(p.addr), n.addr) {
								return false
							}
						}
					}
					return true
				}
			}
			eventually(t, 15*time.Second, everyone(nil, func(Node) bool { return true }))
			t.Logf("%s: a seed and 4 nodes on 5 hosts converged %v after the seed started", family, time.Since(start).Round(time.Millisecond))

			t.Run("trust between hosts", func(t *testing.T) {
				is := is.New(t)
				other := nodes[0].addr
				status, _ := outsider.do("POST", seed.addr, "/nodes/", nodeJSON(addr(outsider), 9))
				is.Equal(status, 403) // another host may not add directly
				status, _ = outsider.do("DELETE", seed.addr, "/nodes/", nodeBody(other))
				is.Equal(status, 403) // nor remove a live node of someone else's
				status, _ = outsider.do("POST", seed.addr, "/", nodeJSON("127.0.0.1", int(seed.addr.Port)))
				is.Equal(status, 403) // nor announce the seed's own loopback
				status, _ = outsider.do("POST", seed.addr, "/", nodeBody(other))
				is.Equal(status, 403) // nor a third party
				banner := outsider.listen(1, "banner", addr(outsider))[0]
				status, body := outsider.do("POST", seed.addr, "/", nodeBody(banner))
				is.Equal(status, 422)
				is.True(strings.Contains(body, "not an HTTP answer") && !strings.Contains(body, "SECRET")) // never echoes a service's bytes

				status, _ = op.do("POST", seed.addr, "/nodes/", nodeJSON("127.0.0.1", 9))
				// the operator on the seed's own host, calling its address
				is.Equal(status, 200)
				is.True(slices.Contains(op.list(seed.addr), nodeAt("127.0.0.1", 9)))        // sees loopback entries
				is.True(!slices.Contains(outsider.list(seed.addr), nodeAt("127.0.0.1", 9))) // other hosts never get them
				status, _ = op.do("DELETE", seed.addr, "/nodes/", nodeJSON("127.0.0.1", 9))
				is.Equal(status, 200)
			})

			t.Run("link down and up", func(t *testing.T) {
				h, gone := l.hosts[2], nodes[1]
				start := time.Now()
				h.link("down")
				at := seenAt(t, 15*time.Second, everyone(gone, func(n Node) bool { return n != gone.addr }))
				rounds := seed.roundsBy(at) - seed.roundsBy(start)
				t.Logf("%s: a host whose link went down was forgotten everywhere after %v (%d rounds of the seed)",
					family, at.Sub(start).Round(time.Millisecond), rounds)
				atMost(t, "rounds of the seed until a host whose link went down was forgotten everywhere", rounds, 3)
				h.link("up")
				took := eventually(t, 15*time.Second, everyone(nil, func(Node) bool { return true }))
				t.Logf("%s: and was back everywhere %v after its link returned (down for %v)", family, took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
			})

			t.Run("leave", func(t *testing.T) {
				leaving := nodes[2]
				start := time.Now()
				leaving.cmd.Process.Signal(os.Interrupt) // Ctrl-C: it closes its listener, then says goodbye from its own address
				at := seenAt(t, 10*time.Second, everyone(leaving, func(n Node) bool { return n != leaving.addr }))
				rounds := seed.roundsBy(at) - seed.roundsBy(start)
				t.Logf("%s: a node that left with Ctrl-C was forgotten everywhere after %v (%d rounds of the seed)",
					family, at.Sub(start).Round(time.Millisecond), rounds)
				atMost(t, "rounds of the seed until a node that left was forgotten everywhere "+
					"(believed at once: -f 2 failed checks take 2)", rounds, 1)
			})
		})
	}
}

// TestNoSingleSeedDecidesAcrossHosts is TestNoSingleSeedDecides with real
// processes, each seed and each group of nodes on a host of its own: a
// lying seed (it lists only its accomplices, live nodes that know nobody
// else) or a silent one (it lists nothing) is first in a newcomer's
// nodes.json, before the honest seed. Within 5 rounds at -u 1 every
// newcomer knows at least half of -k honest peers, and the honest seed
// lists it.
func TestNoSingleSeedDecidesAcrossHosts(t *testing.T) {
	for _, bad := range []string{"lying", "silent"} {
		t.Run(bad, func(t *testing.T) {
			t.Parallel()
			const k = 4
			l := newLab(t, 9) // h0 the honest seed, h1 the bad seed and its accomplices, h2-h4 honest nodes, h5-h8 newcomers
			flags := func(h *labHost, seed *proc) []string {
				return []string{"-role=node", "-i", h.v4, "-p", "0", "-u", "1", "-t", "1",
					"-k", strconv.Itoa(k), "-d", "node",
					"-di", seed.addr.IP.String(), "-dp", strconv.Itoa(int(seed.addr.Port))}
			}
			honestSeed := l.hosts[0].start("-role=seed", "-i", l.hosts[0].v4,
				"-p", "0", "-u", "1", "-t", "1", "-d", "seed")
			liar := l.hosts[1]
			badSeed := liar.listen(1, "empty", liar.v4)[0]
			accomplices := map[Node]bool{}
			if bad == "lying" {
				// A seed whose 2k places its accomplices fill: the
				// newcomers, of the same group, never get one.
				seed := liar.start("-role=seed", "-i", liar.v4, "-p", "0", "-u", "1", "-t", "1", "-d", "seed",
					"-m", strconv.Itoa(2*k))
				badSeed = seed.addr
				for range 2 * k { // they know the bad seed only, and list each other
					accomplices[liar.start(flags(liar, seed)...).addr] = true
				}
				eventually(t, 20*time.Second, func() bool { return len(liar.list(badSeed)) == 2*k })
			}
			var honest []*proc
			for _, h := range l.hosts[2:5] {
				for range k {
					honest = append(honest, h.start(flags(h, honestSeed)...))
				}
			}
			eventually(t, 20*time.Second, func() bool { return len(l.hosts[0].list(honestSeed.addr)) == len(honest) })
			var newcomers []*proc
			for _, h := range l.hosts[5:9] {
				newcomers = append(newcomers, h.startWithSeeds([]Node{badSeed, honestSeed.addr}, // the bad one first
					"-role=node", "-i", h.v4, "-p", "0", "-u", "1", "-t", "1", "-k", strconv.Itoa(k), "-d", "node"))
			}
			honestPeers := func(h *labHost, p *proc) int {
				n := 0
				for _, m := range h.list(p.addr) {
					if !accomplices[m] {
						n++
					}
				}
				return n
			}
			done := func() bool {
				for i, p := range newcomers {
					if honestPeers(l.hosts[5+i], p) < k/2 || !slices.Contains(l.hosts[0].list(honestSeed.addr), p.addr) {
						return false
					}
				}
				return true
			}
			at := seenAt(t, 30*time.Second, done)
			rounds := 0
			for _, p := range newcomers {
				rounds = max(rounds, p.roundsBy(at))
			}
			t.Logf("%s seed first: every newcomer knows %d or more honest peers and is listed by the honest seed within %d rounds", bad, k/2, rounds)
			atMost(t, "rounds until every newcomer knows half of -k honest peers and the honest seed lists it",
				rounds, 5)
		})
	}
}
