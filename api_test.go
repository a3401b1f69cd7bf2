package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/matryer/is"
)

func TestAPI(t *testing.T) {
	peer := nodeAt("127.0.0.5", 5000)
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
		{name: "nodes without slash", method: "GET", path: "/nodes", wantStatus: 307, wantBody: `{"location":"/nodes/"}`, wantHeader: [2]string{"Location", "/nodes/"}},
		{name: "a path to clean", method: "GET", path: "//nodes/", wantStatus: 307, wantBody: `{"location":"/nodes/"}`, wantHeader: [2]string{"Location", "/nodes/"}},
		{name: "a path to clean, with ..", method: "DELETE", path: "/x/../nodes/?a=1", wantStatus: 307, wantBody: `{"location":"/nodes/?a=1"}`, wantHeader: [2]string{"Location", "/nodes/?a=1"}},
		{name: "nodes without slash, a sample", method: "GET", path: "/nodes?sample=2", wantStatus: 307, wantBody: `{"location":"/nodes/?sample=2"}`, wantHeader: [2]string{"Location", "/nodes/?sample=2"}},
		{name: "body too large", method: "POST", path: "/nodes/", body: `{"ip_address": "` + strings.Repeat("1", 2000) + `", "port": 1}`, wantStatus: 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			tbl := newTable(t, 10, peer)
			req := newRequest(tc.method, tc.path, strings.NewReader(tc.body))
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
	tbl := newTable(t, 10, nodeAt("127.0.0.5", 5000))
	h := newHandler(tbl, alive)
	before := string(tbl.Body())
	for _, tc := range invalidNodes {
		for _, ep := range []string{"POST /", "POST /nodes/", "DELETE /nodes/"} {
			for _, ctype := range []string{"application/json", ""} {
				method, path, _ := strings.Cut(ep, " ")
				req := newRequest(method, path, strings.NewReader(tc.json))
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
			req := newRequest("POST", "/nodes/", strings.NewReader(body))
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
		{"remove by the node itself, while it answers", "DELETE", "192.0.2.7:40000", 403, 1},
		{"remove by another host", "DELETE", "192.0.2.8:40000", 403, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			start := nodeAt("192.0.2.7", 7000)
			if tc.method == "POST" {
				start = nodeAt("192.0.2.9", 9000)
			}
			tbl := newTable(t, 10, start)
			req := newRequest(tc.method, "/nodes/", strings.NewReader(body))
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
		tbl := newTable(t, 1, nodeAt("127.0.0.5", 5000))
		h := newHandler(tbl, alive)
		for _, path := range []string{"/", "/nodes/"} {
			req := newRequest("POST", path, strings.NewReader(`{"ip_address": "127.0.0.6", "port": 6000}`))
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
		peers := startPeers(t, 5, config{enough: 10, max: 10}) // a seed that knows 4: more than the cap
		n := startPeer(t, "127.0.0.1", config{enough: 10, max: 2})
		n.table.SetSeeds([]Node{peers[0].self()})
		for _, p := range peers[1:] {
			_, err := peers[0].table.Add(p.self())
			is.NoErr(err)
		}
		n.nodeRound(context.Background())
		is.Equal(n.table.Len(), 2) // stops adding at -m
	})
}

func TestConcurrentAdds(t *testing.T) {
	t.Parallel()
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
	got, err := parseNodes(listed, maxListEntries)
	is.NoErr(err)
	is.Equal(len(got), 200) // every add listed
	onDisk, err := os.ReadFile(tbl.path)
	is.NoErr(err)
	is.Equal(string(onDisk), string(listed)) // file equals GET /nodes/
	for _, n := range nodes {
		is.True(tbl.Has(n)) // each node kept
	}
}

func TestSample(t *testing.T) {
	is := is.New(t)
	nodes := distinctNodes(50)
	tbl := newTable(t, 100, append(nodes, nodeAt("127.0.0.5", 5))...)
	h := newHandler(tbl, alive)
	var got []Node
	w := ask(h, "GET", "/nodes/?sample=8", "203.0.113.9:4000", "")
	is.Equal(w.Code, 200)
	is.NoErr(json.Unmarshal(w.Body.Bytes(), &got))
	is.Equal(len(got), 8) // as many as asked
	seen := map[Node]bool{}
	for _, n := range got {
		is.True(!seen[n] && tbl.Has(n) && !n.scoped()) // distinct, known, and no loopback for another host
		seen[n] = true
	}
	is.NoErr(json.Unmarshal(ask(h, "GET", "/nodes/?sample=500", "127.0.0.1:4000", "").Body.Bytes(), &got))
	is.Equal(len(got), 51)                                                      // at most the table
	is.Equal(ask(h, "GET", "/nodes/?sample=x", "127.0.0.1:4000", "").Code, 400) // not a number
	is.Equal(ask(h, "GET", "/nodes/?sample=-1", "127.0.0.1:4000", "").Code, 400)
	is.Equal(ask(h, "GET", "/nodes/", "127.0.0.1:4000", "").Body.String(), string(tbl.Body())) // the blog's client: the whole file
	// none asked: an empty array, not null
	is.Equal(ask(h, "GET", "/nodes/?sample=0", "127.0.0.1:4000", "").Body.String(), "[]\n")
	loopbackOnly := newHandler(newTable(t, 10, nodeAt("127.0.0.5", 5)), alive)
	// none another host may have
	is.Equal(ask(loopbackOnly, "GET", "/nodes/?sample=4", "203.0.113.9:4000", "").Body.String(), "[]\n")
}
