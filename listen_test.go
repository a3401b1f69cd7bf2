package main

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/matryer/is"
)

func TestListenRandomSkipsTakenPorts(t *testing.T) {
	is := is.New(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	defer taken.Close()
	free := deadAddr(t).Port
	picks := []int{taken.Addr().(*net.TCPAddr).Port, int(free)}
	ln, err := listenRandom(netip.MustParseAddr("127.0.0.1"), func() int {
		p := picks[0]
		picks = picks[1:]
		return p
	})
	is.NoErr(err) // a taken port is not fatal
	defer ln.Close()
	is.Equal(ln.Addr().(*net.TCPAddr).Port, int(free)) // the next pick is used
}

// TestListenSaysWhatToDo: errors from the system come in the program's own
// words, with what to do.
func TestListenSaysWhatToDo(t *testing.T) {
	is := is.New(t)
	taken, err := listen(netip.MustParseAddr("127.0.0.1"), 0)
	is.NoErr(err)
	defer taken.Close()
	_, err = listen(netip.MustParseAddr("127.0.0.1"), taken.Addr().(*net.TCPAddr).Port)
	// port taken
	is.True(err != nil &&
		strings.Contains(err.Error(), "is in use by another process: stop it, or give another -p"))
	// TEST-NET-1: no host has it; binding sends nothing
	_, err = listen(netip.MustParseAddr("192.0.2.1"), 0)
	is.True(err != nil && strings.Contains(err.Error(), "-i 192.0.2.1 is not an address of this host; its addresses are 127.0.0.1")) // names the host's own
}
