package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/matryer/is"
)

// TestConnectionBounds: at most maxConnsPerIP connections from one
// address, any number from loopback up to maxConns in all; a closed one
// makes room again.
func TestConnectionBounds(t *testing.T) {
	is := is.New(t)
	l := newBoundedListener(nil)
	other, loopback := netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("127.0.0.1")
	for range maxConnsPerIP {
		is.True(l.take(other))
	}
	is.True(!l.take(other))                             // one address: no more
	is.True(l.take(netip.MustParseAddr("203.0.113.6"))) // another: yes
	l.release(other)
	is.True(l.take(other)) // one closed: room again
	for l.open < maxConns {
		is.True(l.take(loopback)) // loopback: any number
	}
	is.True(!l.take(loopback)) // up to maxConns in all
}

// TestHeadersAreBounded: a request whose headers are far past a Node's
// needs is refused before it is read.
func TestHeadersAreBounded(t *testing.T) {
	is := is.New(t)
	p := startProc(t, t.TempDir(), "-role=seed", "-p", "0")
	c, err := net.Dial("tcp", p.addr.String())
	is.NoErr(err)
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nX-Padding: %s\r\n\r\n", p.addr, strings.Repeat("x", 8<<10))
	status := make([]byte, 12)
	_, err = io.ReadFull(c, status)
	is.NoErr(err)
	is.Equal(string(status), "HTTP/1.1 431") // Request Header Fields Too Large
}
