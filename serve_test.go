package main

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/matryer/is"
)

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
