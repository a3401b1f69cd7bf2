package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
)

// quiet is a logger for tests that do not read the logs.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// self is the address of the process under test in handler-level tests.
var self = Node{IP: "127.0.0.1", Port: 42020}

// newTable opens a table in a fresh directory.
func newTable(t testing.TB, max int, nodes ...Node) *Table {
	t.Helper()
	tbl, err := openTable(t.TempDir(), "nodes.json", self, max)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Close() })
	if _, err := tbl.Add(nodes...); err != nil {
		t.Fatal(err)
	}
	return tbl
}

// newHandler is the API of a process whose table is tbl; verify stands in for the connect-back check.
func newHandler(tbl *Table, verify func(context.Context, Node) error) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, tbl, verify, quiet)
	return mux
}

// alive and unreachable stand in for the connect-back check.
func alive(context.Context, Node) error       { return nil }
func unreachable(context.Context, Node) error { return errors.New("connection refused") }

// compact gives s as compact JSON, or s itself if it is not JSON.
func compact(s string) string {
	var b bytes.Buffer
	if json.Compact(&b, []byte(s)) != nil {
		return s
	}
	return b.String()
}

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
			is.Equal(n, n.canonical())    // decoded nodes are canonical
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

func TestAPI(t *testing.T) {
	peer := Node{IP: "127.0.0.5", Port: 5000}
	other := `{"ip_address": "127.0.0.6", "port": 6000}`
	tests := []struct {
		name         string
		method, path string
		body         string
		verify       func(context.Context, Node) error
		wantStatus   int
		wantBody     string // compact JSON; "" means an {"error": ...} object
		wantHeader   [2]string
	}{
		{name: "check", method: "GET", path: "/", wantStatus: 200, wantBody: `{}`},
		{name: "check head", method: "HEAD", path: "/", wantStatus: 200, wantBody: "-"},
		{name: "list", method: "GET", path: "/nodes/", wantStatus: 200, wantBody: `[{"ip_address":"127.0.0.5","port":5000}]`},
		{name: "add", method: "POST", path: "/nodes/", body: other, wantStatus: 200, wantBody: `[{"ip_address":"127.0.0.5","port":5000},{"ip_address":"127.0.0.6","port":6000}]`},
		{name: "add duplicate", method: "POST", path: "/nodes/", body: `{"ip_address": "127.0.0.5", "port": 5000}`, wantStatus: 200, wantBody: `[{"ip_address":"127.0.0.5","port":5000}]`},
		{name: "add other spelling of known", method: "POST", path: "/nodes/", body: `{"ip_address": "::ffff:127.0.0.5", "port": 5000}`, wantStatus: 200, wantBody: `[{"ip_address":"127.0.0.5","port":5000}]`},
		{name: "add self", method: "POST", path: "/nodes/", body: `{"ip_address": "127.0.0.1", "port": 42020}`, wantStatus: 400},
		{name: "remove", method: "DELETE", path: "/nodes/", body: `{"ip_address": "127.0.0.5", "port": 5000}`, wantStatus: 200, wantBody: `[]`},
		{name: "remove self", method: "DELETE", path: "/nodes/", body: `{"ip_address": "127.0.0.1", "port": 42020}`, wantStatus: 400},
		{name: "remove unknown", method: "DELETE", path: "/nodes/", body: other, wantStatus: 200, wantBody: `[{"ip_address":"127.0.0.5","port":5000}]`},
		{name: "announce", method: "POST", path: "/", body: other, verify: alive, wantStatus: 200, wantBody: compact(other)},
		{name: "announce unreachable", method: "POST", path: "/", body: other, verify: unreachable, wantStatus: 422},
		{name: "announce known needs no check", method: "POST", path: "/", body: `{"ip_address": "127.0.0.5", "port": 5000}`, verify: unreachable, wantStatus: 200, wantBody: `{"ip_address":"127.0.0.5","port":5000}`},
		{name: "announce self", method: "POST", path: "/", body: `{"ip_address": "127.0.0.1", "port": 42020}`, verify: alive, wantStatus: 400},
		{name: "root wrong method", method: "PUT", path: "/", wantStatus: 405, wantHeader: [2]string{"Allow", "GET, HEAD, POST"}},
		{name: "nodes wrong method", method: "PATCH", path: "/nodes/", body: other, wantStatus: 405, wantHeader: [2]string{"Allow", "GET, HEAD, POST, DELETE"}},
		{name: "unknown path", method: "GET", path: "/blocks/", wantStatus: 404},
		{name: "below nodes", method: "GET", path: "/nodes/x", wantStatus: 404},
		{name: "nodes without slash", method: "GET", path: "/nodes", wantStatus: 307, wantBody: "-", wantHeader: [2]string{"Location", "/nodes/"}},
		{name: "body too large", method: "POST", path: "/nodes/", body: `{"ip_address": "` + strings.Repeat("1", 2000) + `", "port": 1}`, wantStatus: 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			tbl := newTable(t, 10, peer)
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			req.RemoteAddr = "127.0.0.1:40000" // an operator on this machine
			w := httptest.NewRecorder()
			newHandler(tbl, tc.verify).ServeHTTP(w, req)

			is.Equal(w.Code, tc.wantStatus) // status
			if tc.wantHeader[0] != "" {
				is.Equal(w.Header().Get(tc.wantHeader[0]), tc.wantHeader[1]) // header
			}
			switch tc.wantBody {
			case "-":
			case "":
				var e struct{ Error string }
				is.NoErr(json.Unmarshal(w.Body.Bytes(), &e))                 // error body is JSON
				is.True(e.Error != "")                                       // error message
				is.Equal(w.Header().Get("Content-Type"), "application/json") // error content type
			default:
				is.Equal(compact(w.Body.String()), tc.wantBody) // body
			}
			onDisk, err := os.ReadFile(tbl.path)
			is.NoErr(err)
			is.Equal(string(onDisk), string(tbl.Body())) // file equals GET /nodes/
		})
	}
}

// TestRejectionsChangeNothing sends every invalid body to every endpoint that
// takes one, with and without a JSON content type.
func TestRejectionsChangeNothing(t *testing.T) {
	is := is.New(t)
	tbl := newTable(t, 10, Node{IP: "127.0.0.5", Port: 5000})
	h := newHandler(tbl, alive)
	before := string(tbl.Body())
	for _, tc := range invalidNodes {
		for _, ep := range []string{"POST /", "POST /nodes/", "DELETE /nodes/"} {
			for _, ctype := range []string{"application/json", ""} {
				method, path, _ := strings.Cut(ep, " ")
				req := httptest.NewRequest(method, path, strings.NewReader(tc.json))
				req.Header.Set("Content-Type", ctype)
				req.RemoteAddr = "127.0.0.1:40000"
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				is.Equal(w.Code, 400)                                                // invalid body
				is.True(strings.Contains(w.Body.String(), `"error"`))                // error object
				is.Equal(string(tbl.Body()), before)                                 // table unchanged
				t.Logf("%s %s: %s", ep, tc.name, strings.TrimSpace(w.Body.String())) // the messages, for reading with -v
			}
		}
	}
	onDisk, err := os.ReadFile(tbl.path)
	is.NoErr(err)
	is.Equal(string(onDisk), before) // file unchanged
}

func TestBothContentTypes(t *testing.T) {
	is := is.New(t)
	tbl := newTable(t, 10)
	srv := httptest.NewServer(newHandler(tbl, alive))
	defer srv.Close()
	for i, ctype := range []string{"application/json", "application/x-www-form-urlencoded"} {
		body := fmt.Sprintf(`{"ip_address": "127.0.0.9", "port": %d}`, 9000+i)
		resp, err := http.Post(srv.URL+"/nodes/", ctype, strings.NewReader(body))
		is.NoErr(err)
		resp.Body.Close()
		is.Equal(resp.StatusCode, 200) // accepted with this content type
	}
	is.Equal(tbl.Len(), 2) // both added
}

func TestBodyTooLargeWithoutLength(t *testing.T) {
	for name, body := range map[string]string{
		"long address":             `{"ip_address": "` + strings.Repeat("1", 1<<20),
		"valid node, then padding": `{"ip_address": "127.0.0.9", "port": 9000}` + strings.Repeat(" ", 1<<20),
	} {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			tbl := newTable(t, 10)
			req := httptest.NewRequest("POST", "/nodes/", strings.NewReader(body))
			req.RemoteAddr = "127.0.0.1:40000"
			req.ContentLength = -1 // unknown, as with a chunked body: only reading can tell the size
			w := httptest.NewRecorder()
			newHandler(tbl, alive).ServeHTTP(w, req)
			is.Equal(w.Code, 413)  // over the limit
			is.Equal(tbl.Len(), 0) // nothing added
		})
	}
}

func TestOperatorEndpointsTrustLoopbackOnly(t *testing.T) {
	body := `{"ip_address": "192.0.2.7", "port": 7000}`
	tests := []struct {
		name, method, remote string
		wantStatus, wantLen  int
	}{
		{"add from loopback", "POST", "127.0.0.1:40000", 200, 2},
		{"add from ipv6 loopback", "POST", "[::1]:40000", 200, 2},
		{"add from elsewhere", "POST", "192.0.2.7:40000", 403, 1},
		{"remove from loopback", "DELETE", "127.0.0.1:40000", 200, 0},
		{"remove by the node itself", "DELETE", "192.0.2.7:40000", 200, 0},
		{"remove by another host", "DELETE", "192.0.2.8:40000", 403, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			start := Node{IP: "192.0.2.7", Port: 7000}
			if tc.method == "POST" {
				start = Node{IP: "192.0.2.9", Port: 9000}
			}
			tbl := newTable(t, 10, start)
			req := httptest.NewRequest(tc.method, "/nodes/", strings.NewReader(body))
			req.RemoteAddr = tc.remote
			w := httptest.NewRecorder()
			newHandler(tbl, alive).ServeHTTP(w, req)
			is.Equal(w.Code, tc.wantStatus) // status
			is.Equal(tbl.Len(), tc.wantLen) // nodes after
		})
	}
}

func TestCap(t *testing.T) {
	t.Run("api", func(t *testing.T) {
		is := is.New(t)
		tbl := newTable(t, 1, Node{IP: "127.0.0.5", Port: 5000})
		h := newHandler(tbl, alive)
		for _, path := range []string{"/", "/nodes/"} {
			req := httptest.NewRequest("POST", path, strings.NewReader(`{"ip_address": "127.0.0.6", "port": 6000}`))
			req.RemoteAddr = "127.0.0.1:40000"
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			is.Equal(w.Code, 409) // table full
		}
		is.Equal(tbl.Len(), 1) // nothing added
	})
	t.Run("concurrent", func(t *testing.T) {
		is := is.New(t)
		tbl := newTable(t, 50)
		srv := httptest.NewServer(newHandler(tbl, alive))
		defer srv.Close()
		codes := postConcurrently(t, srv.URL+"/nodes/", distinctNodes(200))
		is.Equal(codes[200], 50)  // adds accepted up to the cap
		is.Equal(codes[409], 150) // the rest refused
		is.Equal(tbl.Len(), 50)   // never over the cap
	})
	t.Run("round", func(t *testing.T) {
		is := is.New(t)
		peers := startPeers(t, 5, config{limit: 10, max: 10}) // a seed that knows 4: more than the cap
		n := startPeer(t, "127.0.0.1", config{limit: 10, max: 2})
		n.seeds = []Node{peers[0].self()}
		for _, p := range peers[1:] {
			_, err := peers[0].table.Add(p.self())
			is.NoErr(err)
		}
		n.nodeRound(context.Background())
		is.Equal(n.table.Len(), 2) // stops adding at -m
	})
}

// distinctNodes returns n different nodes on the documentation range 192.0.2.0/24, which nothing contacts.
func distinctNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{IP: fmt.Sprintf("192.0.2.%d", i%250+1), Port: 1000 + i}
	}
	return nodes
}

// postConcurrently posts every node to url at once and counts the answers by status.
func postConcurrently(t testing.TB, url string, nodes []Node) map[int]int {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: len(nodes)}}
	defer client.CloseIdleConnections()
	codes := make([]int, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(n)
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				return // counted as status 0
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	counts := map[int]int{}
	for _, c := range codes {
		counts[c]++
	}
	return counts
}

func TestConcurrentAdds(t *testing.T) {
	is := is.New(t)
	tbl := newTable(t, 1000)
	srv := httptest.NewServer(newHandler(tbl, alive))
	defer srv.Close()
	nodes := distinctNodes(200)

	codes := postConcurrently(t, srv.URL+"/nodes/", nodes)

	is.Equal(codes[200], 200) // every add acknowledged
	resp, err := http.Get(srv.URL + "/nodes/")
	is.NoErr(err)
	listed, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	is.NoErr(err)
	got, err := parseNodes(listed)
	is.NoErr(err)
	is.Equal(len(got), 200) // every add listed
	onDisk, err := os.ReadFile(tbl.path)
	is.NoErr(err)
	is.Equal(string(onDisk), string(listed)) // file equals GET /nodes/
	for _, n := range nodes {
		is.True(tbl.Has(n)) // each node kept
	}
}

func TestPersistence(t *testing.T) {
	t.Run("round trip", func(t *testing.T) {
		is := is.New(t)
		dir := t.TempDir()
		a, b := Node{IP: "127.0.0.5", Port: 5000}, Node{IP: "::1", Port: 6000}
		tbl, err := openTable(dir, "nodes.json", self, 10)
		is.NoErr(err)
		_, err = tbl.Add(a, b, Node{IP: "127.0.0.7", Port: 7000})
		is.NoErr(err)
		_, err = tbl.Remove(Node{IP: "127.0.0.7", Port: 7000})
		is.NoErr(err)
		body := string(tbl.Body())
		is.NoErr(tbl.Close())

		again, err := openTable(dir, "nodes.json", self, 10)
		is.NoErr(err)
		defer again.Close()
		is.Equal(again.List(), []Node{a, b})                                                                  // same nodes, same order
		is.Equal(string(again.Body()), body)                                                                  // same bytes
		is.True(strings.Contains(body, "\n  {\n    \"ip_address\": \"127.0.0.5\",\n    \"port\": 5000\n  }")) // indented
	})
	t.Run("missing file is an empty table, written at once", func(t *testing.T) {
		is := is.New(t)
		dir := filepath.Join(t.TempDir(), "new", "dir")
		tbl, err := openTable(dir, "nodes.json", self, 10)
		is.NoErr(err)
		defer tbl.Close()
		onDisk, err := os.ReadFile(filepath.Join(dir, "nodes.json"))
		is.NoErr(err)
		is.Equal(string(onDisk), "[]\n") // empty table on disk
	})
	t.Run("blog's compact file is read and normalised", func(t *testing.T) {
		is := is.New(t)
		dir := t.TempDir()
		path := filepath.Join(dir, "nodes.json")
		blog := `[{"ip_address": "127.0.0.5", "port": 5000}, {"ip_address": "127.0.0.5", "port": 5000}, {"ip_address": "127.0.0.1", "port": 42020}]`
		is.NoErr(os.WriteFile(path, []byte(blog), 0o644))
		tbl, err := openTable(dir, "nodes.json", self, 10)
		is.NoErr(err)
		defer tbl.Close()
		is.Equal(tbl.List(), []Node{{IP: "127.0.0.5", Port: 5000}}) // duplicate and self dropped
		onDisk, _ := os.ReadFile(path)
		is.Equal(string(onDisk), string(tbl.Body())) // file rewritten to match
	})
	t.Run("temp files from a crash are removed", func(t *testing.T) {
		is := is.New(t)
		dir := t.TempDir()
		tmp := filepath.Join(dir, "nodes.json.tmp-123")
		is.NoErr(os.WriteFile(tmp, []byte(`[{"ip_add`), 0o644))
		tbl, err := openTable(dir, "nodes.json", self, 10)
		is.NoErr(err)
		defer tbl.Close()
		_, err = os.Stat(tmp)
		is.True(errors.Is(err, os.ErrNotExist)) // leftover removed
	})
	t.Run("corrupt file is refused and left alone", func(t *testing.T) {
		for name, content := range map[string]string{
			"truncated": `[{"ip_address": "127.0.0.5", "po`,
			"empty":     ``,
			"bad entry": `[{"ip_address": "localhost", "port": 5000}]`,
			"object":    `{"ip_address": "127.0.0.5", "port": 5000}`,
		} {
			t.Run(name, func(t *testing.T) {
				is := is.New(t)
				dir := t.TempDir()
				path := filepath.Join(dir, "nodes.json")
				is.NoErr(os.WriteFile(path, []byte(content), 0o600))
				_, err := openTable(dir, "nodes.json", self, 10)
				is.True(err != nil)                          // refused
				is.True(strings.Contains(err.Error(), path)) // message names the file
				onDisk, _ := os.ReadFile(path)
				is.Equal(string(onDisk), content) // untouched
			})
		}
	})
	t.Run("file over the cap is refused and left alone", func(t *testing.T) {
		is := is.New(t)
		dir := t.TempDir()
		path := filepath.Join(dir, "nodes.json")
		content := encodeNodes(distinctNodes(3))
		is.NoErr(os.WriteFile(path, content, 0o644))
		_, err := openTable(dir, "nodes.json", self, 2)
		is.True(err != nil)                                // refused
		is.True(strings.Contains(err.Error(), "raise -m")) // says what to do
		onDisk, _ := os.ReadFile(path)
		is.Equal(onDisk, content) // untouched
	})
	t.Run("second open of the same file is refused", func(t *testing.T) {
		is := is.New(t)
		dir := t.TempDir()
		first, err := openTable(dir, "nodes.json", self, 10)
		is.NoErr(err)
		_, err = openTable(dir, "nodes.json", self, 10)
		is.True(err != nil)                              // locked
		is.True(strings.Contains(err.Error(), "in use")) // says why
		is.NoErr(first.Close())
		again, err := openTable(dir, "nodes.json", self, 10)
		is.NoErr(err) // free once the first is closed
		again.Close()
	})
}

// testPeer is one simulated process: its table, rounds and API on a real loopback server.
type testPeer struct {
	*refresher
	srv *httptest.Server
}

func (p *testPeer) self() Node { return p.client.self }

// startPeer starts a process on host (port chosen by the kernel) with cfg's limit, max and fails.
func startPeer(t testing.TB, host string, cfg config) *testPeer {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ip, cfg.dir, cfg.file = host, t.TempDir(), "nodes.json"
	cfg.timeout = cmp.Or(cfg.timeout, seconds(10*time.Second)) // generous: a loaded machine slows tests, never fails them
	cfg.max = max(cfg.max, 1)
	cfg.fails = max(cfg.fails, 1)
	r, err := newRefresher(cfg, ln, "", quiet)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(newHandler(r.table, r.client.ping))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		r.table.Close()
	})
	return &testPeer{refresher: r, srv: srv}
}

// startPeers starts n processes on 127.0.0.1.
func startPeers(t testing.TB, n int, cfg config) []*testPeer {
	peers := make([]*testPeer, n)
	for i := range peers {
		peers[i] = startPeer(t, "127.0.0.1", cfg)
	}
	return peers
}

// deadAddr returns an address on which nothing listens: connections are refused.
func deadAddr(t testing.TB) Node {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	return Node{IP: "127.0.0.1", Port: addr.Port}
}

// hungPeer is an address that accepts connections and never answers.
type hungPeer struct {
	node     Node
	accepted chan struct{} // closed at the first connection
}

// hungAddr starts a hungPeer on loopback.
func hungAddr(t testing.TB) hungPeer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := hungPeer{node: Node{IP: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}, accepted: make(chan struct{})}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if conns == nil {
				close(h.accepted)
			}
			conns = append(conns, c) // held open, never read or answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return h
}

func TestRoundDropsClosedAndHungPeers(t *testing.T) {
	for _, role := range []string{"seed", "node"} {
		t.Run(role, func(t *testing.T) {
			is := is.New(t)
			live := startPeers(t, 2, config{limit: 10, max: 10})
			p := startPeer(t, "127.0.0.1", config{limit: 1, max: 10, timeout: seconds(300 * time.Millisecond)})
			dead, hung := deadAddr(t), hungAddr(t).node
			_, err := p.table.Add(dead, live[0].self(), hung, live[1].self())
			is.NoErr(err)

			var s roundStats
			if role == "seed" {
				s = p.seedRound(context.Background())
			} else {
				s = p.nodeRound(context.Background())
			}

			is.Equal(s.removed, 2)                                           // closed and hung removed
			is.Equal(p.table.List(), []Node{live[0].self(), live[1].self()}) // live kept, in order
			if role == "node" {
				is.True(live[0].table.Has(p.self())) // the check announced the node to its peers
			}
		})
	}
}

func TestListFromHostilePeer(t *testing.T) {
	tests := []struct {
		name, body string
		want       []Node // nil: the list is refused
	}{
		{"invalid entries skipped", `[{"ip_address": "localhost", "port": 1}, {"ip_address": "127.0.0.5", "port": 5000}, "x", null, 7]`, []Node{{IP: "127.0.0.5", Port: 5000}}},
		{"not a list", `{"ip_address": "127.0.0.5", "port": 5000}`, nil},
		{"garbage", `<html>`, nil},
		{"over the limit", "[" + strings.Repeat(`{"ip_address": "127.0.0.5", "port": 5000},`, maxListBody/40) + `{"ip_address": "127.0.0.5", "port": 5000}]`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tc.body) }))
			defer peer.Close()
			got, err := newPeerClient(2*time.Second, self).list(context.Background(), nodeOf(t, peer.URL))
			is.Equal(got, tc.want)               // what is learned
			is.Equal(err != nil, tc.want == nil) // refused lists are errors
		})
	}
}

func TestRedirectIsNotAnAnswer(t *testing.T) {
	is := is.New(t)
	live, announces, other := countingServer(t)
	redirector := httptest.NewServer(http.RedirectHandler("http://"+live.String()+"/", http.StatusTemporaryRedirect))
	defer redirector.Close()
	c := newPeerClient(2*time.Second, self)
	is.True(c.ping(context.Background(), nodeOf(t, redirector.URL)) != nil)     // a 307 is not a 2xx
	is.True(c.announce(context.Background(), nodeOf(t, redirector.URL)) != nil) // nor for POST
	is.Equal(announces.Load()+other.Load(), int32(0))                           // the redirects were not followed
}

func TestFailThreshold(t *testing.T) {
	is := is.New(t)
	var down atomic.Bool
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	defer flaky.Close()
	node := nodeOf(t, flaky.URL)
	p := startPeer(t, "127.0.0.1", config{fails: 3, max: 10})
	_, err := p.table.Add(node)
	is.NoErr(err)

	down.Store(true)
	p.seedRound(context.Background())
	p.seedRound(context.Background())
	is.True(p.table.Has(node)) // two failures in a row: still listed
	down.Store(false)
	p.seedRound(context.Background())
	down.Store(true)
	p.seedRound(context.Background())
	p.seedRound(context.Background())
	is.True(p.table.Has(node)) // a success resets the count
	p.seedRound(context.Background())
	is.True(!p.table.Has(node)) // third failure in a row removes it
}

// nodeOf is the Node of an httptest server's URL.
func nodeOf(t testing.TB, url string) Node {
	ap, err := net.ResolveTCPAddr("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	return Node{IP: ap.IP.String(), Port: ap.Port}
}

func TestForEachRunsConcurrentlyWithABound(t *testing.T) {
	t.Run("all at once when few", func(t *testing.T) {
		is := is.New(t)
		// Each call waits for all the others to start: run one at a time, they would never finish.
		nodes := distinctNodes(20)
		var started sync.WaitGroup
		started.Add(len(nodes))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		errs := forEach(ctx, nodes, func(ctx context.Context, n Node) error {
			started.Done()
			done := make(chan struct{})
			go func() { started.Wait(); close(done) }()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		is.Equal(errs, make([]error, len(nodes))) // every call saw all the others running
	})
	t.Run("never more than the bound", func(t *testing.T) {
		is := is.New(t)
		var running, most atomic.Int32
		release := make(chan struct{})
		go func() {
			for running.Load() < maxInFlight {
				time.Sleep(time.Millisecond) // polling for the calls to fill the slots
			}
			close(release)
		}()
		forEach(context.Background(), distinctNodes(500), func(ctx context.Context, n Node) error {
			now := running.Add(1)
			defer running.Add(-1)
			for {
				m := most.Load()
				if now <= m || most.CompareAndSwap(m, now) {
					break
				}
			}
			<-release
			return nil
		})
		is.Equal(most.Load(), int32(maxInFlight)) // bound reached, never passed
	})
}

// countingServer answers 200 to everything and counts announces (POST /) apart from other requests.
func countingServer(t testing.TB) (n Node, announces, other *atomic.Int32) {
	announces, other = new(atomic.Int32), new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && r.URL.Path == "/" {
			announces.Add(1)
		} else {
			other.Add(1)
		}
	}))
	t.Cleanup(srv.Close)
	return nodeOf(t, srv.URL), announces, other
}

func TestNodeSendsOneCheckPerPeerPerRoundOnceLimitMet(t *testing.T) {
	is := is.New(t)
	peer, checks, other := countingServer(t)
	seed, seedAnnounces, seedOther := countingServer(t)
	p := startPeer(t, "127.0.0.1", config{limit: 1, max: 10})
	p.seeds = []Node{seed}
	_, err := p.table.Add(peer)
	is.NoErr(err)
	for range 5 {
		p.nodeRound(context.Background())
	}
	is.Equal(checks.Load(), int32(5))        // one check per round
	is.Equal(other.Load(), int32(0))         // no list fetched: the limit was met
	is.Equal(seedAnnounces.Load(), int32(5)) // one announce per round keeps the seed's list whole
	is.Equal(seedOther.Load(), int32(0))     // no list asked of the seed
}

func TestLoopSleepsBetweenRounds(t *testing.T) {
	is := is.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var rounds int
	loop(ctx, 100*time.Millisecond, func(context.Context) roundStats { rounds++; return roundStats{} }, quiet)
	// A round at once and then one per 100ms: about 3. A loop that did not
	// sleep would run millions; the bound is loose for slow machines.
	is.True(rounds >= 1 && rounds <= 10) // rounds in 300ms
}

// converged reports whether every node knows at least min(limit, others) peers and the seed knows all nodes.
func converged(seed *testPeer, nodes []*testPeer, limit int) bool {
	for _, n := range nodes {
		if n.table.Len() < min(limit, len(nodes)-1) {
			return false
		}
	}
	return seed.table.Len() == len(nodes)
}

// runRounds drives one round of every node, then one of the seed.
func runRounds(seed *testPeer, nodes []*testPeer) {
	for _, n := range nodes {
		n.nodeRound(context.Background())
	}
	seed.seedRound(context.Background())
}

func TestSeedRelearnsANodeItDropped(t *testing.T) {
	is := is.New(t)
	seed := startPeer(t, "127.0.0.1", config{max: 10})
	nodes := startPeers(t, 2, config{limit: 1, max: 10})
	for _, n := range nodes {
		n.seeds = []Node{seed.self()}
	}
	runRounds(seed, nodes)
	is.True(converged(seed, nodes, 1)) // both nodes know their limit of 1 peer
	_, err := seed.table.Remove(nodes[0].self())
	is.NoErr(err) // as after a passing failure
	runRounds(seed, nodes)
	is.True(seed.table.Has(nodes[0].self())) // a node that knows enough peers still announces to the seed
}

func TestNetworkConvergesAndForgetsTheDead(t *testing.T) {
	is := is.New(t)
	seed := startPeer(t, "127.0.0.1", config{max: 100})
	nodes := startPeers(t, 6, config{limit: 10, max: 100})
	for _, n := range nodes {
		n.seeds = []Node{deadAddr(t), seed.self()} // a dead seed first: the next one is tried
	}
	rounds := 0
	for !converged(seed, nodes, 10) && rounds < 5 {
		runRounds(seed, nodes)
		rounds++
	}
	is.True(converged(seed, nodes, 10)) // every node knows the other 5, the seed all 6
	is.True(rounds <= 2)                // within two rounds
	t.Logf("converged in %d rounds", rounds)

	dead := nodes[2]
	dead.srv.Close()
	nodes = append(nodes[:2], nodes[3:]...)
	runRounds(seed, nodes)
	for _, p := range append(nodes, seed) {
		is.True(!p.table.Has(dead.self())) // gone after one round, not learned back from a stale list
	}
	runRounds(seed, nodes)
	for _, p := range append(nodes, seed) {
		is.True(!p.table.Has(dead.self())) // and stays gone
	}
}

func TestIPv6Network(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback here:", err)
	} else {
		ln.Close()
	}
	is := is.New(t)
	seed := startPeer(t, "::1", config{max: 10})
	nodes := []*testPeer{startPeer(t, "::1", config{limit: 10, max: 10}), startPeer(t, "::1", config{limit: 10, max: 10})}
	for _, n := range nodes {
		n.seeds = []Node{seed.self()}
	}
	runRounds(seed, nodes)
	runRounds(seed, nodes)
	is.True(converged(seed, nodes, 10)) // nodes on ::1 find each other
	is.Equal(nodes[0].table.List()[0].IP, "::1")
}

func TestListenRandomSkipsTakenPorts(t *testing.T) {
	is := is.New(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	defer taken.Close()
	free := deadAddr(t).Port
	picks := []int{taken.Addr().(*net.TCPAddr).Port, free}
	ln, err := listenRandom("127.0.0.1", func() int { p := picks[0]; picks = picks[1:]; return p })
	is.NoErr(err) // a taken port is not fatal
	defer ln.Close()
	is.Equal(ln.Addr().(*net.TCPAddr).Port, free) // the next pick is used
}

func TestBootstrapSeeds(t *testing.T) {
	tests := []struct {
		name string
		ip   string
		port int
		want []Node
	}{
		{"committed nodes.json", "", 0, []Node{{IP: "127.0.0.1", Port: 42020}}},
		{"-di alone", "127.0.0.7", 0, []Node{{IP: "127.0.0.7", Port: 42020}}},
		{"-dp alone", "", 4000, []Node{{IP: "127.0.0.1", Port: 4000}}},
		{"both", "::ffff:127.0.0.8", 4000, []Node{{IP: "127.0.0.8", Port: 4000}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			seeds, err := bootstrapSeeds(config{dnsIP: tc.ip, dnsPort: tc.port})
			is.NoErr(err)
			is.Equal(seeds, tc.want) // the seeds tried in step 3
		})
	}
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no role", nil, 2, "-role"},
		{"bad role", []string{"-role=miner"}, 2, "-role"},
		{"unknown flag", []string{"-role=seed", "-x"}, 2, "not defined"},
		{"bad interval", []string{"-role=seed", "-u", "soon"}, 2, "seconds"},
		{"host name", []string{"-role=node", "--ip", "localhost"}, 2, "not an IP"},
		{"port out of range", []string{"-role=seed", "-p", "70000"}, 2, "-p must be 0-65535"},
		{"help", []string{"-h"}, 0, "-k, --kn_limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			var stderr bytes.Buffer
			err := run(context.Background(), append([]string{"peerdisc"}, tc.args...), io.Discard, &stderr)
			is.Equal(exitCode(err, &stderr), tc.wantCode)                 // exit status
			is.True(strings.Contains(stderr.String(), tc.wantErr))        // says what is wrong
			is.True(strings.Contains(stderr.String(), "usage: go run .")) // prints the usage
		})
	}
}

func TestSecondsFlag(t *testing.T) {
	is := is.New(t)
	var s seconds
	is.NoErr(s.Set("60"))
	is.Equal(time.Duration(s), time.Minute) // whole seconds
	is.NoErr(s.Set("500ms"))
	is.Equal(time.Duration(s), 500*time.Millisecond) // Go duration
	is.True(s.Set("0") != nil)                       // must be positive
	is.True(s.Set("-1s") != nil)                     // must be positive
}

// FuzzDecodeNode checks that the decoder never panics and that whatever it
// accepts is a valid, canonical node that survives a round trip.
func FuzzDecodeNode(f *testing.F) {
	for _, tc := range invalidNodes {
		f.Add([]byte(tc.json))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := decodeNode(bytes.NewReader(data))
		if err != nil {
			return
		}
		if err := n.Valid(); err != nil {
			t.Fatalf("accepted an invalid node %+v: %v", n, err)
		}
		if n != n.canonical() {
			t.Fatalf("accepted node %+v is not canonical", n)
		}
		enc, _ := json.Marshal(n)
		back, err := decodeNode(bytes.NewReader(enc))
		if err != nil || back != n {
			t.Fatalf("round trip of %+v gave %+v, %v", n, back, err)
		}
	})
}
