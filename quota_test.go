package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/matryer/is"
)

// TestConnectionBounds: at most maxConnsPerIP connections from one
// address, any number from loopback up to maxConns in all; a closed one
// makes room again.
func TestConnectionBounds(t *testing.T) {
	is := is.New(t)
	q := newQuota(nil, time.Second)
	other, loopback := netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("127.0.0.1")
	for range maxConnsPerIP {
		is.True(q.takeConn(other))
	}
	is.True(!q.takeConn(other))                             // one address: no more
	is.True(q.takeConn(netip.MustParseAddr("203.0.113.6"))) // another: yes
	q.closeConn(other)
	is.True(q.takeConn(other)) // one closed: room again
	for q.open < maxConns {
		is.True(q.takeConn(loopback)) // loopback: any number
	}
	is.True(!q.takeConn(loopback)) // up to maxConns in all
}

// TestListenerCountsEachConnectionOnce: an IPv4 caller counts by its
// IPv4 address and /24 however the socket spells it (a listener of both
// families gives ::ffff:a.b.c.d, and all of those share one IPv6 /64), and
// a connection closed twice is uncounted once.
func TestListenerCountsEachConnectionOnce(t *testing.T) {
	is := is.New(t)
	conns := make(chan net.Conn, 2*maxConnsPerSubnet)
	for i := range cap(conns) {
		c, other := net.Pipe()
		defer other.Close()
		from := &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("198.51.%d.1", i)), Port: 1} // 16 bytes: mapped
		conns <- fromConn{c, from}
	}
	close(conns)
	q := newQuota(nil, time.Second)
	ln := boundedListener{Listener: chanListener(conns), quota: q}
	var accepted []net.Conn
	for c, err := ln.Accept(); err == nil; c, err = ln.Accept() {
		accepted = append(accepted, c)
	}
	is.Equal(len(accepted), cap(conns)) // each of its own /24
	accepted[0].Close()
	accepted[0].Close()
	is.Equal(q.open, cap(conns)-1) // uncounted once
}

// fromConn is a connection from a given remote address.
type fromConn struct {
	net.Conn
	from net.Addr
}

func (c fromConn) RemoteAddr() net.Addr { return c.from }

// chanListener accepts the connections of a channel until it is closed.
type chanListener chan net.Conn

func (l chanListener) Accept() (net.Conn, error) {
	if c, ok := <-l; ok {
		return c, nil
	}
	return nil, net.ErrClosed
}
func (l chanListener) Close() error   { return nil }
func (l chanListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestOneSubnetCannotHoldEveryConnection: addresses of one IPv6 /64 (or
// IPv4 /24) together hold maxConnsPerSubnet connections, however many
// they are; another subnet still gets its own.
func TestOneSubnetCannotHoldEveryConnection(t *testing.T) {
	is := is.New(t)
	q := newQuota(nil, time.Second)
	for _, prefix := range []string{"2001:db8:0:1::%x", "198.51.100.%d"} {
		taken := 0
		for i := range 200 {
			if q.takeConn(netip.MustParseAddr(fmt.Sprintf(prefix, i+1))) {
				taken++
			}
		}
		is.Equal(taken, maxConnsPerSubnet)
	}
	is.True(q.takeConn(netip.MustParseAddr("2001:db8:0:2::1"))) // another /64
	is.True(q.takeConn(netip.MustParseAddr("198.51.101.1")))    // another /24
	q.closeConn(netip.MustParseAddr("198.51.100.1"))
	is.True(q.takeConn(netip.MustParseAddr("198.51.100.250"))) // a closed one makes room
}

// TestOneGroupCannotHoldEveryConnection: an attacker that owns an IPv6 /48
// (one /32 group) or an IPv4 /16, each address in a subnet of its own, so
// that no address or subnet is over its share, holds its group's share of
// the connections, not every one: others still connect.
func TestOneGroupCannotHoldEveryConnection(t *testing.T) {
	for _, tc := range []struct{ family, attacker, honest string }{
		{"IPv6", "2001:db8:7:%x::%x", "2001:db9::1"},
		{"IPv4", "198.51.%d.%d", "203.0.113.1"},
	} {
		t.Run(tc.family, func(t *testing.T) {
			is := is.New(t)
			q := newQuota(nil, time.Second)
			taken := 0
			for i := range 256 { // 256 subnets, as many connections as each allows
				for j := range maxConnsPerSubnet / maxConnsPerIP {
					for range maxConnsPerIP {
						if q.takeConn(netip.MustParseAddr(fmt.Sprintf(tc.attacker, i, j+1))) {
							taken++
						}
					}
				}
			}
			is.Equal(taken, maxConnsPerGroup)                   // its group's share
			is.True(q.takeConn(netip.MustParseAddr(tc.honest))) // another group still connects
			is.True(taken <= maxConns/4)                        // four such groups leave room for others
		})
	}
}

// TestSampleTurns: a group's sample requests are served one at a time, a
// caller that gives up leaves the queue, and other groups do not wait.
func TestSampleTurns(t *testing.T) {
	is := is.New(t)
	q := newQuota(nil, time.Second)
	attacker, honest := netip.MustParsePrefix("198.51.0.0/16"), netip.MustParsePrefix("203.0.0.0/16")
	draw := func() []byte { return []byte("[]") }
	// a caller that never reads its answer keeps its turn
	_, done := q.sample(context.Background(), attacker, draw)
	is.True(done != nil)

	gaveUp, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	body, _ := q.sample(gaveUp, attacker, draw)
	is.Equal(body, nil) // its group's next caller waits, until it gives up

	_, other := q.sample(context.Background(), honest, draw) // another group does not wait
	is.True(other != nil)
	other()

	next := make(chan func())
	go func() {
		_, done := q.sample(context.Background(), attacker, draw)
		next <- done
	}()
	done() // the turn passes to the group's next caller
	(<-next)()
	is.Equal(len(q.turns), 0) // nothing is kept for groups with no caller
}

// TestEveryShareCountsOnce: a caller whose group and subnet are one prefix
// (a link-local or loopback address, a group of its own) gets perSubnet
// checks, not half of them.
func TestEveryShareCountsOnce(t *testing.T) {
	is := is.New(t)
	q := newQuota(nil, time.Second)
	for _, ip := range []string{"fe80::1", "127.0.0.2", "198.51.100.1"} {
		src := netip.MustParseAddr(ip)
		for range perSubnet {
			is.NoErr(q.enter(src, false))
		}
		is.Equal(q.enter(src, false), errBusy) // one past its share
		for range perSubnet {
			q.leave(src)
		}
	}
	is.Equal(len(q.checks), 0) // every count undone
}
