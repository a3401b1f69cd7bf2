package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
)

// invalidNodes are bodies that no endpoint may accept.
var invalidNodes = []struct{ name, json string }{
	{"empty", ``},
	{"not json", `hello`},
	{"null", `null`},
	{"array", `[{"ip_address": "127.0.0.1", "port": 55000}]`},
	{"string", `"127.0.0.1:55000"`},
	{"empty object", `{}`},
	{"missing port", `{"ip_address": "127.0.0.1"}`},
	{"missing ip", `{"port": 55000}`},
	{"null ip", `{"ip_address": null, "port": 55000}`},
	{"null port", `{"ip_address": "127.0.0.1", "port": null}`},
	{"unknown field", `{"ip_address": "127.0.0.1", "port": 55000, "name": "x"}`},
	{"key in other case", `{"IP_ADDRESS": "127.0.0.1", "port": 55000}`},
	{"trailing object", `{"ip_address": "127.0.0.1", "port": 55000}{}`},
	{"trailing garbage", `{"ip_address": "127.0.0.1", "port": 55000} x`},
	{"port as string", `{"ip_address": "127.0.0.1", "port": "55000"}`},
	{"port fraction", `{"ip_address": "127.0.0.1", "port": 55000.5}`},
	{"port zero", `{"ip_address": "127.0.0.1", "port": 0}`},
	{"port negative", `{"ip_address": "127.0.0.1", "port": -1}`},
	{"port too big", `{"ip_address": "127.0.0.1", "port": 65536}`},
	{"port huge", `{"ip_address": "127.0.0.1", "port": 1e30}`},
	{"ip as number", `{"ip_address": 2130706433, "port": 55000}`},
	{"host name", `{"ip_address": "localhost", "port": 55000}`},
	{"port inside ip", `{"ip_address": "127.0.0.1:55000", "port": 55000}`},
	{"bracketed ipv6", `{"ip_address": "[::1]", "port": 55000}`},
	{"ipv6 zone", `{"ip_address": "fe80::1%eth0", "port": 55000}`},
	{"unspecified v4", `{"ip_address": "0.0.0.0", "port": 55000}`},
	{"unspecified v6", `{"ip_address": "::", "port": 55000}`},
	{"multicast", `{"ip_address": "224.0.0.1", "port": 55000}`},
	{"multicast v6", `{"ip_address": "ff02::1", "port": 55000}`},
	{"leading zeros", `{"ip_address": "127.000.000.001", "port": 55000}`},
	{"empty ip", `{"ip_address": "", "port": 55000}`},
	{"duplicate ip", `{"ip_address": "127.0.0.1", "ip_address": "127.0.0.2", "port": 55000}`},
	{"duplicate ip, the first null", `{"ip_address": null, "ip_address": "10.0.0.5", "port": 5}`},
	{"duplicate port, the first null", `{"ip_address": "10.0.0.5", "port": null, "port": 5}`},
	{"unspecified v4, mapped", `{"ip_address": "::ffff:0.0.0.0", "port": 9999}`},
	{"unspecified v4, mapped in full", `{"ip_address": "0:0:0:0:0:ffff:0:0", "port": 9999}`},
	{"unspecified v4, mapped in hex", `{"ip_address": "::ffff:0:0", "port": 9999}`},
	{"broadcast", `{"ip_address": "255.255.255.255", "port": 55000}`},
	{"duplicate port", `{"ip_address": "127.0.0.1", "port": 55000, "port": 1}`},
}

func TestNodeValidation(t *testing.T) {
	valid := []struct{ name, json, want string }{
		{"ipv4", `{"ip_address": "127.0.0.1", "port": 55000}`, "127.0.0.1:55000"},
		{"keys in any order", `{"port": 1, "ip_address": "10.0.0.7"}`, "10.0.0.7:1"},
		{"top port", `{"ip_address": "127.0.0.1", "port": 65535}`, "127.0.0.1:65535"},
		{"ipv6", `{"ip_address": "::1", "port": 55000}`, "[::1]:55000"},
		{"ipv6 long form", `{"ip_address": "0:0:0:0:0:0:0:1", "port": 55000}`, "[::1]:55000"},
		{"ipv4-mapped ipv6", `{"ip_address": "::ffff:127.0.0.2", "port": 55000}`, "127.0.0.2:55000"},
		{"whitespace around", " \n{\"ip_address\":\"127.0.0.1\",\"port\":5}\n ", "127.0.0.1:5"},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			n, err := decodeNode(strings.NewReader(tc.json))
			is.NoErr(err)                 // valid node
			is.Equal(n.String(), tc.want) // canonical address
			is.NoErr(n.Valid())           // decoded nodes are valid
			is.True(inOneSpelling(n))     // decoded nodes are in one spelling
		})
	}
	for _, tc := range invalidNodes {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			_, err := decodeNode(strings.NewReader(tc.json))
			is.True(err != nil) // invalid node must be rejected
		})
	}
}

// TestAddressSpellings: every spelling of an address gets the answer its
// plain form gets, from the decoder and in a list that another host sends.
func TestAddressSpellings(t *testing.T) {
	for _, tc := range []struct{ spelling, plain string }{
		{"::ffff:0.0.0.0", "0.0.0.0"},
		{"0:0:0:0:0:ffff:0:0", "0.0.0.0"},
		{"::ffff:0:0", "0.0.0.0"},
		{"0:0:0:0:0:0:0:0", "::"},
		{"::ffff:127.0.0.1", "127.0.0.1"},
		{"::ffff:7f00:1", "127.0.0.1"},
		{"::ffff:127.9.9.9", "127.9.9.9"},
		{"0:0:0:0:0:0:0:1", "::1"},
		{"::ffff:169.254.169.254", "169.254.169.254"},
		{"::ffff:a9fe:a9fe", "169.254.169.254"},
		{"fe80:0:0:0:0:0:0:1", "fe80::1"},
		{"::ffff:224.0.0.1", "224.0.0.1"},
		{"::ffff:255.255.255.255", "255.255.255.255"},
		{"::ffff:203.0.113.5", "203.0.113.5"},
	} {
		t.Run(tc.spelling, func(t *testing.T) {
			is := is.New(t)
			body := func(ip string) string { return `{"ip_address": "` + ip + `", "port": 5000}` }
			spelled, errSpelled := decodeNode(strings.NewReader(body(tc.spelling)))
			plain, errPlain := decodeNode(strings.NewReader(body(tc.plain)))
			is.Equal(errSpelled == nil, errPlain == nil) // the decoder's answer is the plain form's
			is.Equal(spelled, plain)                     // and so is the node it gives
			listed := func(ip string) []Node {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					io.WriteString(w, "["+body(ip)+"]")
				}))
				defer srv.Close()
				got, err := listFrom(t, srv)
				is.NoErr(err)
				return got
			}
			is.Equal(listed(tc.spelling), listed(tc.plain)) // and so is a list's from another host
		})
	}
}

func abs(x int) int { return max(x, -x) }

func TestRedirectIsNotAnAnswer(t *testing.T) {
	is := is.New(t)
	live, announces, other := countingServer(t)
	redirector := httptest.NewServer(http.RedirectHandler("http://"+live.String()+"/", http.StatusTemporaryRedirect))
	defer redirector.Close()
	c := newPeerClient(2*time.Second, self)
	is.True(c.ping(context.Background(), nodeOf(t, redirector.URL)) != nil) // a 307 is not a 2xx
	_, err := c.announce(context.Background(), nodeOf(t, redirector.URL))
	is.True(err != nil)                               // nor for POST
	is.Equal(announces.Load()+other.Load(), int32(0)) // the redirects were not followed
}

// TestAClosedConnectionIsNoAnswer: a peer that closes or resets the
// connection before it answers, as a process past its connection bounds
// does (boundedListener) or one that restarts, failed a check as a dead
// one does: it gave no answer, and so none that no node gives. Shunned as
// not a node, it would fail its next check without a call, and at -f 2 be
// dropped for one closed connection.
func TestAClosedConnectionIsNoAnswer(t *testing.T) {
	for _, reset := range []bool{false, true} {
		t.Run(map[bool]string{false: "closed", true: "reset"}[reset], func(t *testing.T) {
			is := is.New(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			is.NoErr(err)
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					if reset {
						c.(*net.TCPConn).SetLinger(0) // close with a RST
					}
					c.Read(make([]byte, 4096)) // the request, then nothing
					c.Close()
				}
			}()
			peer := nodeOf(t, "http://"+ln.Addr().String())
			c := newPeerClient(2*time.Second, self)
			err = c.ping(context.Background(), peer)
			is.True(err != nil)
			is.True(!notANode(err)) // not an answer at all
			_, err = c.announce(context.Background(), peer)
			is.True(err != nil)
			is.True(!notANode(err))
			_, err = c.list(context.Background(), peer, 0)
			is.True(err != nil)
			is.True(!notANode(err))
		})
	}
}

// TestFailureSaysWhose: the errors the HTTP client gives when a peer
// closed the connection unanswered are no answer, not one that no node
// gives; a bind that finds no free port is this host's fault, as a
// missing address is; bytes that are not HTTP are not a node's.
func TestFailureSaysWhose(t *testing.T) {
	is := is.New(t)
	get := func(err error) error { return &url.Error{Op: "Get", URL: "http://127.0.0.1:1/", Err: err} }
	closed := get(errors.New("http: server closed idle connection")) // net/http's, when a peer closes at accept
	is.True(!failure(closed).notNode)
	is.True(!failure(closed).ours)
	noPort := get(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)})
	is.True(failure(noPort).ours) // this host's: it bound the address its calls go out from
	is.True(!failure(get(io.EOF)).notNode)
	is.True(failure(get(errors.New(`malformed HTTP response "SSH-2.0"`))).notNode)
}
