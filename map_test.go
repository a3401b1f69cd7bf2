package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
)

// listServer serves GET /nodes/ on ip with whatever *list holds when asked.
func listServer(t *testing.T, ip string, list *[]Node) Node {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(*list)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return nodeAt(ip, ln.Addr().(*net.TCPAddr).Port)
}

func TestMap(t *testing.T) {
	needAliases(t)
	is := is.New(t)
	// A knows B, C and D; B knows A, C and a dead entry X; C knows A and B;
	// D knows C only; F, a second seed, knows nobody and nobody knows it.
	var a, b, c, d, f []Node
	A, B, C := listServer(t, "127.0.0.1", &a), listServer(t, "127.0.0.2", &b), listServer(t, "127.0.0.3", &c)
	D, F := listServer(t, "127.0.0.4", &d), listServer(t, "127.0.0.6", &f)
	X := deadAddr(t)
	X.IP = netip.MustParseAddr("127.0.0.5") // nothing listens on 127.0.0.5 in this test
	a, b, c, d, f = []Node{B, C, D}, []Node{A, C, X}, []Node{A, B}, []Node{C}, []Node{}

	m := crawl(context.Background(), newPeerClient(5*time.Second, Node{}), []Node{A, F}, 100, 8)
	var out bytes.Buffer
	m.mermaid(&out)
	want := strings.NewReplacer("{A}", A.String(), "{B}", B.String(), "{C}", C.String(), "{D}", D.String(), "{F}", F.String(), "{X}", X.String()).Replace(
		"```mermaid\nflowchart LR\n" +
			"  n1[\"{A}\"]\n  n2[\"{B}\"]\n  n3[\"{C}\"]\n  n4[\"{D}\"]\n  n5[\"{F}\"]\n  n6[\"{X} (no answer)\"]:::dead\n" +
			"  n1 <--> n2\n  n1 <--> n3\n  n1 --> n4\n  n2 <--> n3\n  n2 --> n6\n  n4 --> n3\n" +
			"  classDef dead stroke-dasharray: 5 5\n```\n")
	is.Equal(out.String(), want) // the exact graph
	is.Equal(m.summary(), "processes reached: 5; entries that did not answer: 1; links: 9, mutual: 6; "+
		"components: 2; in-degree min/median/max: 0/2/3; out-degree: 0/2/3") // the exact summary

	t.Run("bounded by -m", func(t *testing.T) {
		is := is.New(t)
		m := crawl(context.Background(), newPeerClient(5*time.Second, Node{}), []Node{A}, 2, 8)
		is.Equal(len(m.lists), 2) // asks at most -m processes
		is.Equal(len(m.dead), 0)  // those it did not ask are not dead
	})
	t.Run("run", func(t *testing.T) {
		is := is.New(t)
		var stdout, stderr bytes.Buffer
		err := run(context.Background(),
			[]string{"peerdisc", "-role=map", "-di", A.IP.String(), "-dp", strconv.Itoa(int(A.Port))},
			&stdout, &stderr)
		is.NoErr(err)                                                       // exit 0
		is.True(strings.HasPrefix(stdout.String(), "```mermaid\n"))         // the graph
		is.True(strings.Contains(stdout.String(), "processes reached: 4;")) // then the summary
		err = run(context.Background(),
			[]string{"peerdisc", "-role=map", "-di", X.IP.String(), "-dp", strconv.Itoa(int(X.Port))},
			&stdout, &stderr)
		is.Equal(exitCode(err, &stderr), 1)                            // no seed answered
		is.True(strings.Contains(stderr.String(), "no seed answered")) // says so
	})
}

// TestCrawlIsBounded: a maze of 100 listeners, each answering every GET
// with the same 10,000 entries (the whole maze, its ports at a third
// party's address, and dead ones) and ignoring ?sample. The crawl asks at
// most -m of them, calls no address twice and no more than -hm ports of
// the third party, and keeps at most maxSample entries of each list.
func TestCrawlIsBounded(t *testing.T) {
	needAliases(t)
	is := is.New(t)
	var calls sync.Map // address -> *atomic.Int32
	var maze []Node
	var body []byte
	for range 100 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, _ := calls.LoadOrStore(r.Host, new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
			w.Write(body)
		}))
		t.Cleanup(srv.Close)
		maze = append(maze, nodeOf(t, srv.URL))
	}
	victim := "" // a third party: an address of this host that is not loopback, so that no call leaves it
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			victim = p.Addr().String()
		}
	}
	if victim == "" {
		t.Skip("this host has no IPv4 address but loopback, to stand for a third party")
	}
	var entries []Node
	for i := range 10_000 {
		switch {
		case i < len(maze):
			entries = append(entries, maze[i])
		case i < 2000:
			entries = append(entries, nodeAt(victim, 1+i)) // the third party, at 1,900 ports: nothing listens there
		default:
			entries = append(entries, nodeAt("127.0.0.254", i)) // nothing listens there either
		}
	}
	body = encodeNodes(entries)
	m := crawl(context.Background(), newPeerClient(time.Second, Node{}), maze[:1], 150, 8)
	stored := 0
	for _, l := range m.lists {
		is.True(len(l) <= maxSample) // at most maxSample entries kept of each list
		stored += len(l)
	}
	is.True(len(m.lists)+len(m.dead) <= 150) // at most -m asked
	calls.Range(func(addr, n any) bool {
		is.Equal(n.(*atomic.Int32).Load(), int32(1)) // each address once
		return true
	})
	atVictim := 0
	for _, n := range m.sorted() { // those that answered, then the dead
		if n.IP.String() == victim {
			atVictim++
		}
	}
	is.True(atVictim <= 8) // at most -hm ports of the third party
	t.Logf("asked %d, %d did not answer, %d entries kept", len(m.lists), len(m.dead), stored)
}

// TestInterruptedMapPrintsNothing: a map whose crawl was stopped (Ctrl-C)
// prints nothing and exits as a stop does: the addresses it did not get to
// are not dead, and its seed is not silent.
func TestInterruptedMapPrintsNothing(t *testing.T) {
	is := is.New(t)
	list := []Node{}
	seed := listServer(t, "127.0.0.1", &list)
	cfg, err := parseFlags("peerdisc", []string{"-role=map", "-di", "127.0.0.1", "-dp",
		strconv.Itoa(int(seed.Port))}, io.Discard)
	is.NoErr(err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stopped before the crawl asked anyone
	var out bytes.Buffer
	is.NoErr(runMap(ctx, cfg, &out, quiet))
	is.Equal(out.String(), "")
}
