package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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
	return Node{IP: ip, Port: ln.Addr().(*net.TCPAddr).Port}
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
	X.IP = "127.0.0.5" // nothing listens on 127.0.0.5 in this test
	a, b, c, d, f = []Node{B, C, D}, []Node{A, C, X}, []Node{A, B}, []Node{C}, []Node{}

	m := crawl(context.Background(), newPeerClient(5*time.Second, Node{}), []Node{A, F}, 100)
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
		m := crawl(context.Background(), newPeerClient(5*time.Second, Node{}), []Node{A}, 2)
		is.Equal(len(m.lists), 2) // asks at most -m processes
		is.Equal(len(m.dead), 0)  // those it did not ask are not dead
	})
	t.Run("run", func(t *testing.T) {
		is := is.New(t)
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"peerdisc", "-role=map", "-di", A.IP, "-dp", strconv.Itoa(A.Port)}, &stdout, &stderr)
		is.NoErr(err)                                                       // exit 0
		is.True(strings.HasPrefix(stdout.String(), "```mermaid\n"))         // the graph
		is.True(strings.Contains(stdout.String(), "processes reached: 4;")) // then the summary
		err = run(context.Background(), []string{"peerdisc", "-role=map", "-di", X.IP, "-dp", strconv.Itoa(X.Port)}, &stdout, &stderr)
		is.Equal(exitCode(err, &stderr), 1)                            // no seed answered
		is.True(strings.Contains(stderr.String(), "no seed answered")) // says so
	})
}
