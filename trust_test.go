package main

// Tests of what callers on other hosts may do, at the handler level:
// RemoteAddr stands in for hosts that loopback cannot show.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
)

// onHost is a local test for a process whose host also has 10.9.9.9.
func onHost(ip netip.Addr) bool { return ip.IsLoopback() || ip == netip.MustParseAddr("10.9.9.9") }

// remoteHandler is the API of a process with tbl, where 10.9.9.9 is its host's own address.
func remoteHandler(tbl *Table, verify func(context.Context, Node) error) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, api{table: tbl, checks: newQuota(verify, 10*time.Second), local: onHost, holdOff: time.Minute,
		log: quiet})
	return mux
}

// newRequest is httptest.NewRequest with the Host header that curl, a
// node and the blog's client send: the process's address, not a name.
func newRequest(method, path string, body io.Reader) *http.Request {
	req := httptest.NewRequest(method, path, body)
	req.Host = self.String()
	return req
}

// ask sends one request from remote to h and returns the answer. It gives up
// after 10 s (503), so a handler that would wait for ever fails the test.
func ask(h http.Handler, method, path, remote, body string) *httptest.ResponseRecorder {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := newRequest(method, path, strings.NewReader(body)).WithContext(ctx)
	req.RemoteAddr = remote
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func nodeJSON(ip string, port int) string {
	return fmt.Sprintf(`{"ip_address": %q, "port": %d}`, ip, port)
}

// nodeBody is n as a request body.
func nodeBody(n Node) string { return nodeJSON(n.IP.String(), int(n.Port)) }

func TestAnnounceOnlyYourself(t *testing.T) {
	tests := []struct {
		name, remote, ip string
		wantStatus       int
	}{
		{"itself", "198.51.100.7:40000", "198.51.100.7", 200},
		{"itself, ipv6", "[2001:db8::7]:40000", "2001:db8::7", 200},
		{"itself, v4-mapped source", "[::ffff:198.51.100.7]:40000", "198.51.100.7", 200},
		{"a third party", "198.51.100.7:40000", "203.0.113.9", 403},
		{"our loopback", "198.51.100.7:40000", "127.0.0.1", 403},
		{"our ipv6 loopback", "198.51.100.7:40000", "::1", 403},
		{"itself, link-local", "169.254.7.7:40000", "169.254.7.7", 403},
		{"anything, from loopback", "127.0.0.1:40000", "203.0.113.9", 200},
		{"anything, from this host's own address", "10.9.9.9:40000", "203.0.113.9", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			var checked atomic.Int32
			tbl := newTable(t, 10)
			h := remoteHandler(tbl, func(context.Context, Node) error { checked.Add(1); return nil })
			w := ask(h, "POST", "/", tc.remote, nodeJSON(tc.ip, 5000))
			is.Equal(w.Code, tc.wantStatus) // status
			if tc.wantStatus == 403 {
				is.Equal(checked.Load(), int32(0)) // nothing was contacted
				is.Equal(tbl.Len(), 0)             // nothing was added
				is.True(strings.Contains(w.Body.String(), `"error"`))
			}
		})
	}
}

// TestOnlyPrivateNetworksGetPrivateEntries: a host of a private network
// gets the private entries (RFC 1918, RFC 6598, IPv6 unique-local), which
// it may take from us, in the list and in samples; a host outside gets
// none, which would aim it at its own network.
func TestOnlyPrivateNetworksGetPrivateEntries(t *testing.T) {
	is := is.New(t)
	public, private := nodeAt("198.51.100.7", 7), []Node{nodeAt("10.1.2.3", 1), nodeAt("100.64.0.1", 2),
		nodeAt("fd00::1", 3)}
	tbl := newTable(t, 10, append([]Node{public, nodeAt("127.0.0.5", 5)}, private...)...)
	h := remoteHandler(tbl, alive)
	for _, path := range []string{"/nodes/", "/nodes/?sample=10"} {
		var got []Node
		is.NoErr(json.Unmarshal(ask(h, "GET", path, "203.0.113.9:4000", "").Body.Bytes(), &got))
		is.Equal(got, []Node{public}) // a host outside: no private entry
		is.NoErr(json.Unmarshal(ask(h, "GET", path, "192.168.1.9:4000", "").Body.Bytes(), &got))
		slices.SortFunc(got, compareNodes)
		want := append([]Node{public}, private...)
		slices.SortFunc(want, compareNodes)
		is.Equal(got, want) // a host of a private network: those too, but no loopback entry
	}
}

func TestOtherHostsNeverGetLoopbackEntries(t *testing.T) {
	is := is.New(t)
	tbl := newTable(t, 10,
		nodeAt("127.0.0.5", 5), nodeAt("198.51.100.7", 7), nodeAt("::1", 6), nodeAt("fe80::1", 8))
	h := remoteHandler(tbl, alive)
	var got []Node
	is.NoErr(json.Unmarshal(ask(h, "GET", "/nodes/", "203.0.113.9:4000", "").Body.Bytes(), &got))
	is.Equal(got, []Node{nodeAt("198.51.100.7", 7)}) // other hosts: no loopback, no link-local
	is.NoErr(json.Unmarshal(ask(h, "GET", "/nodes/", "10.9.9.9:4000", "").Body.Bytes(), &got))
	is.Equal(len(got), 4) // this host: everything, as in the file
	w := ask(remoteHandler(tbl, unreachable), "DELETE", "/nodes/", "198.51.100.7:4000", nodeJSON("198.51.100.7", 7))
	is.Equal(w.Code, 200)                                  // the node itself leaves: it no longer answers
	is.True(!strings.Contains(w.Body.String(), "127.0.0")) // and its answer has no loopback either
}

func TestPerHostCap(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	tbl := newTable(t, 1000)
	tbl.hostMax = 8
	h := remoteHandler(tbl, alive)
	codes := map[int]int{}
	for port := 1; port <= 1000; port++ {
		codes[ask(h, "POST", "/", "198.51.100.7:4000", nodeJSON("198.51.100.7", port)).Code]++
	}
	is.Equal(codes[200], 8)   // one IPv4 address holds 8 entries
	is.Equal(codes[409], 992) // the rest are refused
	for i := 1; i <= 5; i++ {
		ip := fmt.Sprintf("203.0.113.%d", i)
		is.Equal(ask(h, "POST", "/", ip+":4000", nodeJSON(ip, 5000)).Code, 200) // honest hosts still join
	}
	for i := 1; i <= 20; i++ {
		ip := fmt.Sprintf("2001:db8:1:2::%x", i)
		is.Equal(ask(h, "POST", "/", "["+ip+"]:4000", nodeJSON(ip, 5000)).Code, 200) // a LAN on one /64 is many hosts
	}
	for port := 1; port <= 9; port++ {
		want := 200
		if port == 9 {
			want = 409 // but one IPv6 address holds 8 entries too
		}
		is.Equal(ask(h, "POST", "/", "[2001:db8:1:3::1]:4000", nodeJSON("2001:db8:1:3::1", port)).Code, want)
	}
	for port := 1; port <= 20; port++ {
		is.Equal(ask(h, "POST", "/", "127.0.0.1:4000", nodeJSON("127.0.0.1", 10000+port)).Code, 200) // loopback is exempt
	}
	is.Equal(tbl.Len(), 8+5+20+8+20)
	_, err := tbl.Remove(nodeAt("198.51.100.7", 1))
	is.NoErr(err)
	is.Equal(ask(h, "POST", "/", "198.51.100.7:4000", nodeJSON("198.51.100.7", 2000)).Code, 200) // a freed place is taken again
}

func TestFairVerification(t *testing.T) {
	is := is.New(t)
	tbl := newTable(t, 1000)
	release := make(chan struct{})
	var attackerChecks, honestChecks atomic.Int32
	h := remoteHandler(tbl, func(ctx context.Context, n Node) error {
		if n.IP.String() != "198.51.100.66" {
			honestChecks.Add(1)
			return nil
		}
		attackerChecks.Add(1)
		<-release // accepts and never answers, until the test ends
		return &peerError{reason: "timed out"}
	})

	// 200 announces of a never-answering address, held open: 100 of one
	// port (one shared check) and 100 of others (a few checks per source).
	var held sync.WaitGroup
	attackerCodes := make([]int, 200)
	for i := range 200 {
		held.Add(1)
		go func() {
			defer held.Done()
			port := 7000
			if i%2 == 1 {
				port = 8000 + i
			}
			attackerCodes[i] = ask(h, "POST", "/", "198.51.100.66:4000", nodeJSON("198.51.100.66", port)).Code
		}()
	}
	// Once the attacker's checks are stuck, honest announces must not wait for them.
	eventually(t, 10*time.Second, func() bool { return attackerChecks.Load() >= 4 })
	for i := 1; i <= 15; i++ {
		ip := fmt.Sprintf("203.0.113.%d", i)
		is.Equal(ask(h, "POST", "/", ip+":4000", nodeJSON(ip, 5000)).Code, 200) // honest announce succeeds meanwhile
	}
	is.Equal(attackerChecks.Load(), int32(perSubnet)) // the attacker never has more than a few checks running
	close(release)
	held.Wait()
	codes := map[int]int{}
	for _, c := range attackerCodes {
		codes[c]++
	}
	is.Equal(codes[200], 0)              // no attacker entry added
	is.Equal(codes[422]+codes[429], 200) // refused: unreachable, or too many from that source
	is.Equal(honestChecks.Load(), int32(15))

	before := attackerChecks.Load()
	is.Equal(ask(h, "POST", "/", "198.51.100.66:4000", nodeJSON("198.51.100.66", 7000)).Code, 422) // in its cool-down
	is.Equal(attackerChecks.Load(), before)                                                        // refused without a new check
}

func TestErrorsNeverEchoAPeer(t *testing.T) {
	c := newPeerClient(300*time.Millisecond, self)
	tests := []struct {
		name string
		node Node
		want string
	}{
		{"a banner", rawServer(t, "SSH-2.0-SECRET_BANNER\r\n"), "not an HTTP answer"},
		{"a reason phrase", rawServer(t, "HTTP/1.1 503 SECRET_REASON\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), "answered 503"},
		{"a header over the cap", rawServer(t, "HTTP/1.1 200 OK\r\nX-A: "+strings.Repeat("SECRET_", maxHeaderBytes)+"\r\n\r\n"), "not an HTTP answer"},
		{"silence", rawServer(t, ""), "timed out"},
		{"nothing there", deadAddr(t), "refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			err := c.ping(context.Background(), tc.node)
			is.Equal(err.Error(), tc.want) // in our words only
			tbl := newTable(t, 10)
			w := ask(newHandler(tbl, c.ping), "POST", "/", "127.0.0.1:4000", nodeBody(tc.node))
			is.Equal(w.Code, 422)
			is.Equal(compact(w.Body.String()), fmt.Sprintf(`{"error":"could not reach you at %s: %s"}`, tc.node, tc.want)) // the reason names no byte of the peer's
		})
	}
}

// listFrom fetches a list as if from 198.51.100.7:80, another host: every
// connection goes to srv instead.
func listFrom(t *testing.T, srv *httptest.Server) ([]Node, error) {
	return listFromAt(t, srv, nodeAt("198.51.100.7", 80))
}

// listFromAt is listFrom, the list as if sent by the process at sender.
func listFromAt(t *testing.T, srv *httptest.Server, sender Node) ([]Node, error) {
	c := newPeerClient(5*time.Second, self)
	c.http.Transport.(*http.Transport).DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("tcp", srv.Listener.Addr().String())
	}
	return c.list(context.Background(), sender, 0)
}

// TestRelayRules: an entry of another process's list is kept only if that
// process could honestly know it: loopback and link-local addresses only
// from this host's loopback, private ones (RFC 1918, RFC 6598, IPv6
// unique-local) only from loopback or a private address.
func TestRelayRules(t *testing.T) {
	entries := []string{"127.0.0.5", "::1", "169.254.1.1", "fe80::1", "10.0.0.5", "172.16.0.1", "192.168.1.1",
		"100.64.0.1", "fd00::5", "203.0.113.5", "2001:db8::5"}
	for _, tc := range []struct {
		sender string
		kept   []string
	}{
		{"127.0.0.1", entries},
		{"::1", entries},
		{"198.51.100.7", []string{"203.0.113.5", "2001:db8::5"}},
		{"2001:db8::7", []string{"203.0.113.5", "2001:db8::5"}},
		{"10.0.0.7", []string{"10.0.0.5", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::5",
			"203.0.113.5", "2001:db8::5"}},
		{"100.64.9.9", []string{"10.0.0.5", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::5",
			"203.0.113.5", "2001:db8::5"}},
		{"fd00::7", []string{"10.0.0.5", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::5",
			"203.0.113.5", "2001:db8::5"}},
	} {
		t.Run("from "+tc.sender, func(t *testing.T) {
			is := is.New(t)
			var list, want []Node
			for _, e := range entries {
				list = append(list, nodeAt(e, 5000))
			}
			for _, e := range tc.kept {
				want = append(want, nodeAt(e, 5000))
			}
			body, _ := json.Marshal(list)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
			defer srv.Close()
			got, err := listFromAt(t, srv, nodeAt(tc.sender, 80))
			is.NoErr(err)
			is.Equal(got, want) // only what the sender could honestly know
		})
	}
}

func TestListsFromOtherHostsAreBounded(t *testing.T) {
	t.Run("no loopback or link-local entries from another host", func(t *testing.T) {
		is := is.New(t)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `[{"ip_address": "127.0.0.1", "port": 8080}, {"ip_address": "::1", "port": 22},
				{"ip_address": "169.254.169.254", "port": 80}, {"ip_address": "fe80::1", "port": 80}, {"ip_address": "203.0.113.5", "port": 5000}]`)
		}))
		defer srv.Close()
		got, err := listFrom(t, srv)
		is.NoErr(err)
		is.Equal(got, []Node{nodeAt("203.0.113.5", 5000)}) // only what another host can mean
	})
	t.Run("no transparent decompression", func(t *testing.T) {
		is := is.New(t)
		var bomb bytes.Buffer
		z := gzip.NewWriter(&bomb)
		z.Write([]byte("[" + strings.Repeat("0,", 2<<20) + "0]"))
		z.Close()
		var asked atomic.Value
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			asked.Store(r.Header.Get("Accept-Encoding"))
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(bomb.Bytes())
		}))
		defer srv.Close()
		_, err := listFrom(t, srv)
		is.Equal(asked.Load(), "")                         // never asks for compression
		is.Equal(err.Error(), "not a JSON array of nodes") // and reads the bytes as they came: 4 kB of garbage
	})
}

func TestListParsingIsBounded(t *testing.T) {
	allocated := func(data []byte) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		parseNodes(data, maxListEntries)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	for _, entry := range []string{"0", `{"ip_address": "127.0.0.5", "port": 5000}`} {
		t.Run(entry, func(t *testing.T) {
			is := is.New(t)
			list := func(n int) []byte { return []byte("[" + strings.Repeat(entry+",", n) + entry + "]") }
			nodes, err := parseNodes(list(4*maxListEntries), maxListEntries)
			is.True(errors.Is(err, errTooMany))   // stops after the bound
			is.True(len(nodes) <= maxListEntries) // and keeps no more
			atBound, past := allocated(list(maxListEntries)), allocated(list(4*maxListEntries))
			t.Logf("%d entries: %d bytes; %d entries: %d bytes", maxListEntries, atBound, 4*maxListEntries, past)
			is.True(atBound < maxListEntries*1024) // under 1 kB per entry read
			is.True(past < atBound+atBound/10)     // and nothing for the entries past the bound
		})
	}
}

func TestRemoveByAnotherHost(t *testing.T) {
	n := nodeAt("198.51.100.7", 7000)
	tests := []struct {
		name       string
		check      func(context.Context, Node) error
		wantStatus int
		wantLen    int
	}{
		{"while it answers", alive, 403, 1},
		{"once it is gone, as behind NAT or over another address family", unreachable, 200, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			tbl := newTable(t, 10, n)
			w := ask(remoteHandler(tbl, tc.check), "DELETE", "/nodes/", "203.0.113.9:4000", nodeBody(n))
			is.Equal(w.Code, tc.wantStatus)
			is.Equal(tbl.Len(), tc.wantLen)
		})
	}
}

// TestLeaveIsProvenBySilence: DELETEs of a node from five hosts, its own
// address among them (a neighbour behind its NAT), remove nothing while it
// answers, even when it stalls for the check or one check of it is lost;
// a loop of them costs one check per hold-off; and once it is silent, its
// own goodbye removes it.
func TestLeaveIsProvenBySilence(t *testing.T) {
	n := nodeAt("198.51.100.7", 7000)
	sources := []string{"198.51.100.7:4000", "203.0.113.9:4000", "203.0.113.10:4000", "192.0.2.33:4000", "[2001:db8::5]:4000"}
	deleteFromAll := func(h http.Handler) (codes []int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, src := range sources {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					w := ask(h, "DELETE", "/nodes/", src, nodeBody(n))
					mu.Lock()
					codes = append(codes, w.Code)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return codes
	}

	t.Run("stalled, then answering", func(t *testing.T) {
		is := is.New(t)
		tbl := newTable(t, 10, n)
		resume := make(chan struct{})
		var checks atomic.Int32
		h := remoteHandler(tbl, func(ctx context.Context, _ Node) error {
			checks.Add(1)
			<-resume // the node stalls: every DELETE waits on the one check
			return nil
		})
		done := make(chan []int)
		go func() { done <- deleteFromAll(h) }()
		eventually(t, 5*time.Second, func() bool { return checks.Load() > 0 })
		close(resume)
		codes := <-done
		is.Equal(tbl.Len(), 1) // nothing removed
		for _, c := range codes {
			is.True(c == 403 || c == 429) // refused: it answers, or its checks are busy
		}
		is.True(checks.Load() <= 2) // 100 DELETEs, one check (and one more if a second source got in first)
	})

	t.Run("one check lost", func(t *testing.T) {
		is := is.New(t)
		tbl := newTable(t, 10, n)
		var checks atomic.Int32
		h := remoteHandler(tbl, func(context.Context, Node) error {
			if checks.Add(1) == 1 {
				return errors.New("timed out") // one lost packet
			}
			return nil
		})
		w := ask(h, "DELETE", "/nodes/", sources[0], nodeBody(n))
		is.Equal(w.Code, 403)  // the second check found it
		is.Equal(tbl.Len(), 1) // kept
	})

	t.Run("silent", func(t *testing.T) {
		is := is.New(t)
		tbl := newTable(t, 10, n)
		w := ask(remoteHandler(tbl, unreachable), "DELETE", "/nodes/", sources[0], nodeBody(n))
		is.Equal(w.Code, 200)  // its goodbye, once its listener is closed
		is.Equal(tbl.Len(), 0) // believed at once
	})
}
