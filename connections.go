package main

// Connections: what stops one host from holding every connection, and the
// descriptors they cost. A process had no bound on the connections it
// accepted: one host could hold as many idle ones as it liked, and a seed
// out of descriptors could neither answer nor check its nodes. Now at most
// maxConnsPerIP connections from one address are open at once (loopback
// is exempt, as from -hm: the operator's tools and the nodes of a network
// on one machine share it), and at most maxConns in all; a connection
// past either is closed as it is accepted. A request's headers are read up
// to maxHeader, and an idle connection is closed after idleTimeout.
// TestOneHostCannotHoldEveryConnection: one host opens 2,000 connections
// to a seed that has 256 descriptors; the seed keeps its nodes and lists a
// newcomer.

import (
	"net"
	"net/netip"
	"sync"
)

// boundedListener is a listener that keeps at most maxConns connections
// open, and at most maxConnsPerIP from one address but loopback's.
type boundedListener struct {
	net.Listener

	mu    sync.Mutex
	open  int
	perIP map[netip.Addr]int
}

func newBoundedListener(ln net.Listener) *boundedListener {
	return &boundedListener{Listener: ln, perIP: map[netip.Addr]int{}}
}

// Accept returns the next connection within the bounds, closing those past them.
func (l *boundedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteAddr(c)
		if l.take(ip) {
			return &boundedConn{Conn: c, release: func() { l.release(ip) }}, nil
		}
		c.Close() // past a bound: the cheapest answer, which costs no descriptor beyond this moment
	}
}

// take counts a new connection from ip, if the bounds allow it.
func (l *boundedListener) take(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= maxConns || !ip.IsLoopback() && l.perIP[ip] >= maxConnsPerIP {
		return false
	}
	l.open++
	if !ip.IsLoopback() {
		l.perIP[ip]++
	}
	return true
}

// release uncounts a connection from ip that has closed.
func (l *boundedListener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if !ip.IsLoopback() {
		l.perIP[ip]--
		if l.perIP[ip] == 0 {
			delete(l.perIP, ip)
		}
	}
}

// boundedConn is an accepted connection, uncounted once it closes.
type boundedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *boundedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// remoteAddr is the address c comes from; the zero Addr if it has none.
func remoteAddr(c net.Conn) netip.Addr {
	if tcp, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return tcp.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
