package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/matryer/is"
)

// TestNodeShunsWhatIsNotANode: a seed's list names a web server (200 with
// HTML to everything), or a JSON API (a 4xx with a JSON object, but none a
// node refuses an announce with). A node tries it once, then takes it from
// no list for -f rounds; once no list names it, nobody calls it.
func TestNodeShunsWhatIsNotANode(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"a web page", "<html>hello</html>", http.StatusOK},
		{"a JSON API's 404", `{"message": "Not Found"}`, http.StatusNotFound},
		{"a JSON API's 401", `{"error": "log in"}`, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			var calls atomic.Int32
			web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			t.Cleanup(web.Close)
			victim := nodeOf(t, web.URL)
			list := []Node{victim}
			seed := listServer(t, "127.0.0.1", &list)
			p := startPeer(t, "127.0.0.1", config{enough: 1, max: 10, fails: 2})
			p.table.SetSeeds([]Node{seed})
			var perRound []int32
			for round := range 6 {
				if round == 4 {
					list = nil // the list that named it is gone
				}
				before := calls.Load()
				p.nodeRound(context.Background())
				perRound = append(perRound, calls.Load()-before)
			}
			is.Equal(p.table.Len(), 0) // never a peer
			// tried, shunned for -f rounds, tried again; then no list names it
			is.Equal(perRound, []int32{1, 0, 0, 1, 0, 0})
		})
	}
}

// TestShunOutlivesTheEntry: an entry that answered not as a node is shunned
// for its rounds even once it has left the table, so that no list offers
// it again meanwhile.
func TestShunOutlivesTheEntry(t *testing.T) {
	is := is.New(t)
	n := nodeAt("198.51.100.9", 80)
	tbl := newTable(t, 10, n)
	tbl.Shun(n, 2)
	_, err := tbl.Remove(n)
	is.NoErr(err)
	is.True(tbl.Shunned(n)) // still, though it left
	for range 3 {
		tbl.NextRound()
	}
	is.True(!tbl.Shunned(n)) // its rounds are over
	is.Equal(len(tbl.candidates), 0)
}

// TestBusyPeerIsAlive: a peer that cannot check us now, because an
// attacker holds its check slots, answers our announce 503 with a JSON
// object: it is alive, and stays our peer however many rounds that lasts.
func TestBusyPeerIsAlive(t *testing.T) {
	is := is.New(t)
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			writeError(w, http.StatusServiceUnavailable, errNoSlot.Error())
		case r.URL.Path == "/nodes/":
			io.WriteString(w, "[]\n")
		default:
			io.WriteString(w, "{}\n")
		}
	}))
	t.Cleanup(busy.Close)
	p := startPeer(t, "127.0.0.1", config{enough: 1, max: 10, fails: 2})
	_, err := p.table.Add(nodeOf(t, busy.URL))
	is.NoErr(err)
	for range 4 {
		p.nodeRound(context.Background())
	}
	is.True(p.table.Has(nodeOf(t, busy.URL))) // kept: busy is not dead
}
