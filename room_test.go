package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
)

// TestRoomByDiversity fills a seed's table (-m 100) from one /16, then
// lets other groups in: first come is not first kept.
func TestRoomByDiversity(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	tbl := newTable(t, 100)
	tbl.hostMax = 8
	var dead atomic.Value // the one incumbent that stops answering
	dead.Store(Node{})
	var mu sync.Mutex
	checks := map[Node]int{}
	v := newQuota(func(_ context.Context, n Node) error {
		mu.Lock()
		checks[n]++
		mu.Unlock()
		// and a newcomer that does not answer either
		if n == dead.Load().(Node) || n.IP.String() == "198.51.201.1" {
			return &peerError{reason: "refused"}
		}
		return nil
	}, 10*time.Second)
	clock := time.Now()
	tbl.now = func() time.Time { return clock } // moved on by hand: an answer holds a minute
	mux := http.NewServeMux()
	addRoutes(mux, api{table: tbl, checks: v, local: onHost, holdOff: time.Minute, log: quiet})
	h := http.Handler(mux)
	from := func(ip string, port int) int { return ask(h, "POST", "/", ip+":4000", nodeJSON(ip, port)).Code }
	for i := range 100 {
		is.Equal(from(fmt.Sprintf("198.51.%d.%d", i/8, 1+i%8), 5000), 200) // one /16 fills the table
	}
	groups := func() map[string]int {
		count := map[string]int{}
		for _, n := range tbl.List() {
			g, _ := groupOf(n)
			count[g.String()]++
		}
		return count
	}
	for i := range 40 {
		ip := fmt.Sprintf("203.%d.0.1", i)
		is.Equal(from(ip, 5000), 200) // a newcomer from another group always gets in
		is.Equal(tbl.Len(), 100)      // in the place of an entry of the largest group
	}
	is.Equal(groups()["198.51.0.0/16"], 60)

	// Groups level out: a group that has as many as the largest waits for an incumbent to fail.
	for i := range 8 {
		is.Equal(from(fmt.Sprintf("203.0.0.%d", 2+i), 5000), 200) // 203.0/16 grows while 198.51/16 is larger
	}
	code := from("198.51.200.1", 5000)
	is.Equal(code, 409) // the largest group's newcomer, while its incumbents answer
	w := ask(h, "POST", "/", "198.51.200.1:4000", nodeJSON("198.51.200.1", 5000))
	is.True(strings.Contains(w.Body.String(), "198.51.0.0/16 has as many entries as any other")) // says why
	for range 30 {                                                                               // a random incumbent each time: some picked twice or more
		is.Equal(from("198.51.200.1", 5000), 409)
	}
	mu.Lock()
	// refused without a check of its own: an incumbent answered
	is.Equal(checks[nodeAt("198.51.200.1", 5000)], 0)
	for n, c := range checks {
		// an incumbent: once as it came in, once to keep its place for -u
		is.True(c <= 2 || !strings.HasPrefix(n.IP.String(), "198.51."))
	}
	mu.Unlock()
	clock = clock.Add(2 * time.Minute) // the answers the incumbents gave as they came in no longer hold
	for _, n := range tbl.List() {
		if g, _ := groupOf(n); g.String() == "198.51.0.0/16" {
			dead.Store(n) // one incumbent of the group stops answering
		}
	}
	failed := false
	for i := 0; i < 2000 && !failed; i++ { // a random incumbent of about 50 is tested each time: the dead one is found in time (missed 2,000 times: e^-40)
		failed = from("198.51.201.1", 5000) == 422
	}
	is.True(failed)                      // the dead one was found, and the newcomer then failed its own check
	is.True(tbl.Has(dead.Load().(Node))) // so the dead one keeps its place, for the sweep to remove
	var got int
	for range 2000 {
		if got = from("198.51.200.1", 5000); got == 200 {
			break
		}
	}
	is.Equal(got, 200)                      // in, in the place of the one that failed its check
	is.True(!tbl.Has(dead.Load().(Node)))   // which is gone
	is.Equal(from("127.0.0.5", 5000), 409)  // loopback entries never make room
	is.Equal(groups()["198.51.0.0/16"], 52) // 100, less 40 and 8 for other groups; one out, one in
}

// TestReplaceIsOneChange: a newcomer takes a failed incumbent's place in
// one change, which nobody sees half made: the table never lists one entry
// short; and where it cannot come in after all (its address has -hm
// entries by then), the incumbent stays: a refusal changes nothing.
func TestReplaceIsOneChange(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	tbl := newTable(t, 3, nodeAt("198.51.0.1", 1), nodeAt("198.51.0.2", 1), nodeAt("203.0.0.1", 1))
	tbl.hostMax = 1
	stop, fewest := make(chan struct{}), make(chan int)
	go func() { // what GET /nodes/ serves, as often as it can, while the places change hands
		least := 3
		for {
			select {
			case <-stop:
				fewest <- least
				return
			default:
			}
			listed, _ := parseNodes(tbl.Body(), 10)
			least = min(least, len(listed))
		}
	}()
	for i := range 20 { // 198.51.0.1 and 198.51.0.9 take each other's place, a write each time
		old, n := nodeAt("198.51.0.1", 1), nodeAt("198.51.0.9", 1)
		if i%2 == 1 {
			old, n = n, old
		}
		added, err := tbl.Replace(old, n)
		is.NoErr(err)
		is.Equal(len(added), 1) // in
		is.True(!tbl.Has(old))  // in the incumbent's place
	}
	close(stop)
	is.Equal(<-fewest, 3) // never one short, as two changes would have left it between them
	_, err := tbl.Replace(nodeAt("198.51.0.2", 1), nodeAt("203.0.0.1", 2))
	is.True(errors.Is(err, errHostFull))      // 203.0.0.1 has its -hm 1 already
	is.True(tbl.Has(nodeAt("198.51.0.2", 1))) // so the incumbent stays
	is.Equal(tbl.Len(), 3)
}

// TestKnownAnnounceEvictsNobody: a node of a full seed's largest group
// announces itself again and again, while the operator removes it and adds
// it back: every incumbent answers its check, so none ever leaves. The
// handler once asked twice whether the node was known, and made room for
// it, with no check, when the answers differed: 20,000 announces found
// that window each time.
func TestKnownAnnounceEvictsNobody(t *testing.T) {
	skipIfShort(t, "20,000 announces against a remove loop")
	t.Parallel()
	is := is.New(t)
	tbl := memTable(self, 4, 4)
	h := remoteHandler(tbl, alive)
	n := nodeAt("198.51.0.9", 5000)
	incumbents := []Node{nodeAt("198.51.0.1", 5000), nodeAt("198.51.0.2", 5000), nodeAt("198.51.0.3", 5000)}
	_, err := tbl.Add(append(incumbents, n)...) // full, one group
	is.NoErr(err)
	stop := churn(tbl, n)
	for range 20000 {
		ask(h, "POST", "/", "198.51.0.9:4000", nodeBody(n))
	}
	stop()
	for _, m := range incumbents {
		is.True(tbl.Has(m)) // never evicted untested
	}
}

// TestFailedNewcomerSpendsNoTimeout: in a full table whose largest group is
// the newcomer's, an incumbent that times out is replaced only once the
// newcomer passes its own check; a newcomer that fails leaves the round's
// share of removals by timeout untouched, for the incumbents that need it.
func TestFailedNewcomerSpendsNoTimeout(t *testing.T) {
	is := is.New(t)
	tbl := newTable(t, 100, distinctNodes(100)...) // one group, 192.0/16
	tbl.lateLeft = 1
	newcomer := nodeAt("192.0.3.1", 5000)
	v := newQuota(func(_ context.Context, n Node) error {
		if n == newcomer {
			return &peerError{reason: "refused"}
		}
		return &peerError{reason: "timed out", timedOut: true} // every incumbent
	}, 10*time.Second)
	mux := http.NewServeMux()
	addRoutes(mux, api{table: tbl, checks: v, local: onHost, holdOff: time.Minute, log: quiet})
	w := ask(mux, "POST", "/", "192.0.3.1:4000", nodeJSON("192.0.3.1", 5000))
	is.Equal(w.Code, 422)     // it failed its check
	is.Equal(tbl.lateLeft, 1) // and spent nothing
	is.Equal(tbl.Len(), 100)
}

// TestIncumbentThatLeftMeanwhileMakesRoom: in a full seed, a newcomer of
// the largest group waits on its incumbent's check; the incumbent leaves
// meanwhile (the sweep removed it). The newcomer, which passed its own
// check, comes in by the rules of any add, into the room the incumbent
// left: its 200 says it is listed, and it is.
func TestIncumbentThatLeftMeanwhileMakesRoom(t *testing.T) {
	is := is.New(t)
	tbl := newTable(t, 3, nodeAt("198.51.0.1", 1), nodeAt("198.51.0.2", 1), nodeAt("198.51.0.3", 1))
	newcomer := nodeAt("198.51.0.9", 1)
	v := newQuota(func(_ context.Context, n Node) error {
		if n != newcomer { // the incumbent: gone by the time its check ends
			tbl.Remove(n)
			return &peerError{reason: "refused"}
		}
		return nil
	}, 10*time.Second)
	mux := http.NewServeMux()
	addRoutes(mux, api{table: tbl, checks: v, local: onHost, holdOff: time.Minute, log: quiet})
	w := ask(mux, "POST", "/", "198.51.0.9:4000", nodeBody(newcomer))
	is.Equal(w.Code, 200)
	is.True(tbl.Has(newcomer)) // listed, as its 200 says
	is.Equal(tbl.Len(), 3)
}

// TestKnownAnnounceAddsNobodyUnchecked: a node's announce while it is an
// entry adds nothing; if the entry leaves while the announce is handled,
// the announce does not bring it back unchecked. Here every check fails,
// and the operator removes the node and adds it back in a loop: the node
// is only ever in the table by the operator's add, never by its announce.
func TestKnownAnnounceAddsNobodyUnchecked(t *testing.T) {
	skipIfShort(t, "20,000 announces against a remove loop")
	t.Parallel()
	is := is.New(t)
	tbl := memTable(self, 100, 4)
	mux := http.NewServeMux()
	addRoutes(mux, api{table: tbl, checks: newQuota(unreachable, 10*time.Second), local: onHost,
		maxInbound: 20, holdOff: time.Minute, log: quiet}) // a node's: what an announce adds is marked so
	n := nodeAt("198.51.0.9", 5000)
	stop := churn(tbl, n)
	unchecked := 0
	for range 20000 {
		w := ask(mux, "POST", "/", "198.51.0.9:4000", nodeBody(n))
		is.True(w.Code != http.StatusConflict) // there is room: if it left meanwhile, 503, not 409 (full)
		tbl.mu.Lock()
		if p := tbl.byNode[n]; p != nil && p.came == announced {
			unchecked++
			tbl.drop(p)
		}
		tbl.mu.Unlock()
	}
	stop()
	is.Equal(unchecked, 0) // the announce never put it back: every check fails
}

// churn removes n and adds it back, as the operator may, again and again
// until stop is called.
func churn(tbl *Table, n Node) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			default:
			}
			tbl.Remove(n)
			tbl.Add(n)
		}
	}()
	return func() { close(done); <-stopped }
}

// TestHungIncumbentMakesRoom: in a full seed, the incumbent picked to make
// room for a newcomer of its group hangs. Its check gets a share of -t, so
// that it and the newcomer's check end within the newcomer's own -t, which
// is when the newcomer's call gives up: a hung incumbent, the way a host
// dies on the Internet, gives way while timeouts have their share left.
func TestHungIncumbentMakesRoom(t *testing.T) {
	is := is.New(t)
	const timeout = 2 * time.Second // both sides' -t
	tbl := newTable(t, 3, nodeAt("198.51.0.1", 1), nodeAt("198.51.0.2", 1), nodeAt("198.51.0.3", 1))
	tbl.lateLeft = 1
	newcomer := nodeAt("198.51.0.9", 1)
	v := newQuota(func(ctx context.Context, n Node) error {
		if n == newcomer {
			return nil
		}
		<-ctx.Done() // an incumbent that accepts and never answers: the check ends at its deadline
		return &peerError{reason: "timed out", timedOut: true}
	}, timeout)
	mux := http.NewServeMux()
	addRoutes(mux, api{table: tbl, checks: v, local: onHost, holdOff: time.Minute, log: quiet})
	ctx, cancel := context.WithTimeout(context.Background(), timeout) // the newcomer's call gives up at its -t
	defer cancel()
	req := newRequest("POST", "/", strings.NewReader(nodeBody(newcomer))).WithContext(ctx)
	req.RemoteAddr = "198.51.0.9:4000"
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	is.Equal(w.Code, 200)
	is.True(tbl.Has(newcomer))
	is.Equal(tbl.lateLeft, 0) // the incumbent's silence spent the round's share
}
