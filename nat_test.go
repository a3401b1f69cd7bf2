//go:build linux

package main

// A node behind NAT (see lab_test.go): a router host masquerades, with
// nftables, for a private network holding one more host. The node there
// gets no listing, but keeps the peers it reaches; with a port forward and
// -a set to the router's address, it is listed.

import (
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestNAT(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	l := newLab(t, 6) // h0 the seed, h1-h4 nodes, h5 the router
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("the NAT test needs nft (nftables):", err)
	}
	router := l.hosts[5]
	home := l.host(l.name+"-home", "192.168.77.2", "", "")
	l.netns(home.ns)
	l.batch(router.ns, "link add lan0 type veth peer name eth0 netns "+home.ns,
		"addr add 192.168.77.1/24 dev lan0", "link set lan0 up")
	l.batch(home.ns, "link set lo up", "addr add 192.168.77.2/24 dev eth0", "link set eth0 up",
		"route add default via 192.168.77.1")
	inRouter := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"netns", "exec", router.ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	inRouter("sysctl", "-qw", "net.ipv4.ip_forward=1")
	const forwarded = 45000
	inRouter("nft", fmt.Sprintf(`table ip nat {
		chain pre { type nat hook prerouting priority -100; iifname "eth0" tcp dport %d dnat to 192.168.77.2:%d; }
		chain post { type nat hook postrouting priority 100; oifname "eth0" ip saddr 192.168.77.0/24 masquerade; }
	}`, forwarded, forwarded))

	seed := l.hosts[0].start("-role=seed", "-i", l.hosts[0].v4, "-p", "0", "-u", "1", "-t", "1", "-d", "seed")
	flags := []string{"-di", seed.addr.IP.String(), "-dp", strconv.Itoa(int(seed.addr.Port)),
		"-u", "1", "-t", "1", "-k", "3", "-d", "node"}
	var nodes []*proc
	for _, h := range l.hosts[1:5] {
		nodes = append(nodes, h.start(append([]string{"-role=node", "-i", h.v4, "-p", "0"}, flags...)...))
	}
	op := l.hosts[0]
	eventually(t, 15*time.Second, func() bool { return len(op.list(seed.addr)) == 4 })

	// Behind the router, advertising its private address.
	hidden := home.launch(t.TempDir(), exec.Command(binary(t),
		append([]string{"-role=node", "-i", "192.168.77.2", "-p", "0"}, flags...)...))
	hidden.waitStarted(t)
	eventually(t, 15*time.Second, func() bool { return hidden.roundsTo(3) > 0 })
	rounds := hidden.roundsTo(3)
	t.Logf("the node behind NAT knew -k 3 live peers after %d rounds", rounds)
	atMost(t, "rounds until the node behind NAT knows -k 3 live peers", rounds, 3)
	eventually(t, 10*time.Second, func() bool {
		return strings.Contains(hidden.stderr.String(), "others see our calls come from "+router.v4+", so nobody can reach us at 192.168.77.2:")
	}) // it says the address others see, and what to do
	is.True(logShape(readmeQuote(t, `(?m)^ *time=\S+ level=WARN msg="others see our calls come from .*$`)).MatchString(hidden.stderr.String())) // as README.md quotes it
	is.True(logShape(readmeQuote(t, "`the seed [^`]* refused us: [^`]*`")).MatchString(hidden.stderr.String()))                                 // and the seed's 403, as README.md quotes it
	everyone := append(slices.Clone(nodes), seed)
	roundsNow := make([]int, len(everyone))
	for i, p := range everyone {
		roundsNow[i] = len(p.rounds())
	}
	eventually(t, 10*time.Second, func() bool { // two more rounds of everyone: still nobody lists it
		for i, p := range everyone {
			if len(p.rounds()) < roundsNow[i]+2 {
				return false
			}
		}
		return true
	})
	for _, p := range append(nodes, seed) {
		// neither its address nor its router's
		is.True(!slices.ContainsFunc(op.list(p.addr), func(n Node) bool {
			return n.IP.String() == "192.168.77.2" || n.IP.String() == router.v4
		}))
	}

	// A port forward, and -a set to the router's address: listed within 2 rounds.
	hidden.cmd.Process.Kill()
	within(t, 10*time.Second, hidden.exited, "the node behind NAT stops")
	forwardedNode := nodeAt(router.v4, forwarded)
	fwdArgs := append([]string{"-role=node", "-i", "192.168.77.2", "-a", router.v4,
		"-p", strconv.Itoa(forwarded)}, flags...)
	fwd := home.launch(t.TempDir(), exec.Command(binary(t), fwdArgs...))
	fwd.waitStarted(t)
	at := seenAt(t, 10*time.Second, func() bool { return slices.Contains(op.list(seed.addr), forwardedNode) })
	atMost(t, "rounds until the seed lists the node behind a port forward", fwd.roundsBy(at), 2)
	is.True(!strings.Contains(fwd.stderr.String(), "others see our calls come from"))
}

// TestNATWarningNeedsAMajority: hosts that say our calls come from another
// address warn only when at least agreeing of them say it, and more than
// say ours: two liars do not outvote ten honest peers.
func TestNATWarningNeedsAMajority(t *testing.T) {
	is := is.New(t)
	ours, theirs := netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("192.0.2.66")
	peers := func(honest, liars int) []*peer {
		var ps []*peer
		for i := range honest + liars {
			p := &peer{Node: nodeAt(fmt.Sprintf("198.51.%d.1", i), 5000), saw: ours}
			if i >= honest {
				p.saw = theirs
			}
			ps = append(ps, p)
		}
		return ps
	}
	_, warn := elsewhere(peers(10, 2), ours)
	is.True(!warn) // outvoted
	seen, warn := elsewhere(peers(0, 2), ours)
	is.True(warn) // as behind NAT: every host that says, says so
	is.Equal(seen, theirs)
	_, warn = elsewhere(peers(0, 1), ours)
	is.True(!warn) // one host alone may lie
}
