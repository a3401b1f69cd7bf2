package main

import (
	"context"
	"net"
	"net/http"
	"testing"

	"github.com/matryer/is"
)

// TestNodeNeedNotAnnounceToASeedThatChecksIt: a seed's check carries the
// address it is listed at (fromHeader); a node that a seed checked since
// its last round does not announce itself to that seed. A header naming
// another address than the call's own is ignored.
func TestNodeNeedNotAnnounceToASeedThatChecksIt(t *testing.T) {
	needAliases(t)
	is := is.New(t)
	a, toA, _ := countingServer(t)
	b, toB, _ := countingServer(t)
	p := startPeer(t, "127.0.0.1", config{enough: 1, max: 10})
	p.table.SetSeeds([]Node{a, b}) // as runNode gives them, before any round
	check := func(from string, as Node) {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
		req, _ := http.NewRequest("GET", "http://"+p.self().String()+"/", nil)
		req.Header.Set(fromHeader, as.String())
		resp, err := c.Do(req)
		is.NoErr(err)
		resp.Body.Close()
	}
	check("127.0.0.1", a) // a checks p
	check("127.0.0.2", b) // a lie: b is not at 127.0.0.2
	p.nodeRound(context.Background())
	is.Equal(toA.Load(), int32(0)) // a checked p: no announce to it
	is.Equal(toB.Load(), int32(1)) // b did not
	p.nodeRound(context.Background())
	is.Equal(toA.Load(), int32(1)) // a round later, unchecked, p announces to a again

	seed := startPeer(t, "127.0.0.1", config{max: 10}) // and a seed's checks say who it is
	_, err := seed.table.Add(p.self())
	is.NoErr(err)
	p.table.SetSeeds([]Node{seed.self()})
	is.True(!p.table.TakeCheckedBy(seed.self())) // not yet
	seed.seedRound(context.Background())
	is.True(p.table.TakeCheckedBy(seed.self())) // the seed's check named the seed
}
