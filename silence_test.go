package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
)

// TestDeleteObeysTheTimeoutCap: a seed's 10 entries all hang. DELETEs of
// each, from other hosts, whose checks time out as the round's did,
// remove one entry until the next round, as timeouts remove at most 1 in
// 100 (at least one) a round: the others get 503, and stay.
func TestDeleteObeysTheTimeoutCap(t *testing.T) {
	is := is.New(t)
	timeout := 300 * time.Millisecond
	seed := startPeer(t, "127.0.0.1", config{role: "seed", max: 20, fails: 2, timeout: seconds(timeout)})
	mux := http.NewServeMux() // the seed's own table, as serve gives it
	addRoutes(mux, api{table: seed.table, checks: newQuota(seed.client.ping, timeout), local: onHost,
		holdOff: answerHolds(time.Second, timeout), log: quiet})
	var hung []Node
	for range 10 {
		hung = append(hung, hungAddr(t).node)
	}
	_, err := seed.table.Add(hung...)
	is.NoErr(err)
	seed.seedRound(context.Background()) // every check times out: one failure each, short of -f 2
	codes := map[int]int{}
	var mu sync.Mutex
	forEachIndex(len(hung), len(hung), func(i int) {
		// each from a subnet of its own
		w := ask(mux, "DELETE", "/nodes/", fmt.Sprintf("203.0.%d.9:4000", i), nodeBody(hung[i]))
		mu.Lock()
		defer mu.Unlock()
		codes[w.Code]++
	})
	t.Logf("DELETEs of 10 hung entries: %v", codes)
	is.Equal(codes[200], 1) // one removed, by the round's cap
	is.Equal(codes[503], 9) // the others refused, for now
	is.Equal(seed.table.Len(), 9)
}

// TestDeleteOfAnAbsentNodeRemovesNobody: a DELETE from another host of a
// node that is no entry needs no check, and removes nothing; not the node
// either when its own announce adds it meanwhile. Here every check
// answers, so no DELETE from another host may remove it: after each
// announce answered 200 the node is listed, whatever DELETEs ran beside.
func TestDeleteOfAnAbsentNodeRemovesNobody(t *testing.T) {
	skipIfShort(t, "20,000 announces, each beside DELETEs")
	t.Parallel()
	is := is.New(t)
	tbl := memTable(self, 100, 4)
	h := remoteHandler(tbl, alive)
	n := nodeAt("198.51.0.9", 5000)
	unlisted := 0
	for range 20000 {
		tbl.Remove(n) // the operator's: absent again
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ask(h, "DELETE", "/nodes/", "203.0.113.66:4000", nodeBody(n))
			}()
		}
		if ask(h, "POST", "/", "198.51.0.9:4000", nodeBody(n)).Code == 200 {
			wg.Wait()
			if !tbl.Has(n) {
				unlisted++
			}
		}
		wg.Wait()
	}
	is.Equal(unlisted, 0) // no DELETE removed it unchecked
}
