package main

// Tests of the map server (mapweb.go): its flag, its endpoints, the event
// stream, and the crawl at 1,000 nodes. The page itself is tested in
// Chromium by browser_test.go.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
)

// fakeNet is a network of in-process peers on real loopback servers that
// answer GET /nodes/ with the lists a test sets, and GET / with {}. The
// lists are guarded, so a test may change them between crawls.
type fakeNet struct {
	mu    sync.Mutex
	lists map[Node][]Node
	srvs  map[Node]*httptest.Server
}

func newFakeNet() *fakeNet {
	return &fakeNet{lists: map[Node][]Node{}, srvs: map[Node]*httptest.Server{}}
}

// peer starts a peer on 127.0.0.1 that lists nobody yet.
func (f *fakeNet) peer(t testing.TB) Node {
	t.Helper()
	var self Node
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			io.WriteString(w, "{}")
			return
		}
		f.mu.Lock()
		list := f.lists[self]
		f.mu.Unlock()
		w.Write(encodeNodes(list))
	}))
	t.Cleanup(srv.Close)
	self = nodeOf(t, srv.URL)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists[self], f.srvs[self] = []Node{}, srv
	return self
}

// set makes n list exactly list.
func (f *fakeNet) set(n Node, list ...Node) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists[n] = list
}

// stop stops n: it answers nothing from now on.
func (f *fakeNet) stop(n Node) {
	f.mu.Lock()
	srv := f.srvs[n]
	f.mu.Unlock()
	srv.Close()
}

// testMapServer is a map server that crawls from seeds, as -role=map -web
// does at the default flags but -t 5.
func testMapServer(seeds ...Node) *mapServer {
	return newMapServer(config{timeout: seconds(5 * time.Second), max: 1000, hostMax: 8}, seeds)
}

// addrsOf is the addresses of a map's nodes that answered, sorted.
func addrsOf(v mapView) []string {
	var out []string
	for _, n := range v.Nodes {
		if n.Answered {
			out = append(out, n.Addr)
		}
	}
	slices.Sort(out)
	return out
}

// strs is the addresses of nodes, sorted.
func strs(nodes ...Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.String())
	}
	slices.Sort(out)
	return out
}

// nextEvent reads the next map event of an event stream.
func nextEvent(t *testing.T, r *bufio.Reader) mapView {
	t.Helper()
	event := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("the event stream ended: %v", err)
		}
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event: "))
		case strings.HasPrefix(line, "data: ") && event == "map":
			var v mapView
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &v); err != nil {
				t.Fatalf("an event that is not a map: %v\n%s", err, line)
			}
			return v
		}
	}
}

// openEvents opens srv's event stream until ctx is done.
func openEvents(t *testing.T, ctx context.Context, url string) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/events", nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, bufio.NewReader(resp.Body)
}

// TestMapWebFlag: -web takes host:port and goes with -role=map; anything
// else is one line and exit 2; a port in use is said in our words.
func TestMapWebFlag(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"not an address", []string{"-role=map", "-web", "nonsense"},
			`error: -web "nonsense": want host:port`},
		{"port out of range", []string{"-role=map", "-web", "127.0.0.1:99999"},
			`error: -web "127.0.0.1:99999": want host:port`},
		{"host name", []string{"-role=map", "-web", "localhost:8042"},
			`error: -web "localhost:8042": want host:port`},
		{"no port", []string{"-role=map", "--web=127.0.0.1"},
			`error: -web "127.0.0.1": want host:port`},
		{"another role", []string{"-role=seed", "-web", "127.0.0.1:8042"},
			"error: -web serves the network map: it goes with -role=map"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			var stderr strings.Builder
			args := append([]string{"./peerdisc"}, tc.args...)
			err := run(context.Background(), args, io.Discard, &stderr)
			is.Equal(exitCode(err, &stderr), 2) // a bad command line
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			is.Equal(len(lines), 2)                          // one line of error, one of help
			is.True(strings.HasPrefix(lines[0], tc.wantErr)) // names what is wrong
		})
	}
	t.Run("port in use", func(t *testing.T) {
		is := is.New(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		is.NoErr(err)
		defer ln.Close()
		var stderr strings.Builder
		args := []string{"./peerdisc", "-role=map", "-web", ln.Addr().String()}
		err = run(context.Background(), args, io.Discard, &stderr)
		is.Equal(exitCode(err, &stderr), 1) // an error, not a bad command line
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		want := "error: -web " + ln.Addr().String() + ": port " + port +
			" on 127.0.0.1 is in use by another process: " +
			"stop it, or give -web another port (127.0.0.1:0 takes any free one)\n"
		is.Equal(stderr.String(), want) // in our words
	})
}

// TestMapWebEndpoints: the page, /map.json and /map.mmd, the mux's 404 and
// 405, each error a JSON object; and 503 before the first crawl ends.
func TestMapWebEndpoints(t *testing.T) {
	is := is.New(t)
	f := newFakeNet()
	a, b, c := f.peer(t), f.peer(t), f.peer(t)
	f.set(a, b, c)
	f.set(b, a)
	f.set(c, a)
	s := testMapServer(a)
	srv := httptest.NewServer(mapRoutes(s))
	t.Cleanup(srv.Close)
	get := func(method, path string) (int, http.Header, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := testClient.Do(req)
		is.NoErr(err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(body)
	}
	for _, path := range []string{"/map.json", "/map.mmd"} {
		status, h, body := get("GET", path)
		is.Equal(status, 503)                               // no map before the first crawl
		is.Equal(h.Get("Content-Type"), "application/json") // as every error
		is.Equal(body, `{"error":"the first crawl has not ended yet"}`+"\n")
	}
	_, ok := s.recrawl(context.Background())
	is.True(ok)

	tests := []struct {
		name, method, path string
		wantStatus         int
		wantType, wantBody string // wantBody: a part of the body
	}{
		{"the page", "GET", "/", 200, "text/html; charset=utf-8", `<svg id="map"`},
		{"the page's head", "HEAD", "/", 200, "text/html; charset=utf-8", ""},
		{"json", "GET", "/map.json", 200, "application/json", `"addr":"` + a.String() + `"`},
		{"mermaid", "GET", "/map.mmd", 200, "text/plain; charset=utf-8",
			"processes reached: 3; entries that did not answer: 0"},
		{"unknown path", "GET", "/nodes/", 404, "application/json",
			`{"error":"no such page /nodes/`},
		{"below the page", "GET", "/x/", 404, "application/json", `"error"`},
		{"wrong method", "POST", "/map.json", 405, "application/json",
			`{"error":"POST is not allowed on /map.json; use GET, HEAD"}`},
		{"wrong method on events", "DELETE", "/events", 405, "application/json", `"error"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			status, h, body := get(tc.method, tc.path)
			is.Equal(status, tc.wantStatus)              // status
			is.Equal(h.Get("Content-Type"), tc.wantType) // type
			is.True(strings.Contains(body, tc.wantBody)) // body
		})
	}
	t.Run("by address only", func(t *testing.T) {
		is := is.New(t)
		hosts := map[string]int{"rebind.example.com:8042": 403, "localhost:8042": 200, "[::1]:8042": 200}
		for host, want := range hosts {
			req, _ := http.NewRequest("GET", srv.URL+"/map.json", nil)
			req.Host = host
			resp, err := testClient.Do(req)
			is.NoErr(err)
			resp.Body.Close()
			is.Equal(resp.StatusCode, want) // a page that rebinds its own name gets nothing
		}
	})
	t.Run("the page's policy", func(t *testing.T) {
		is := is.New(t)
		_, h, _ := get("GET", "/")
		policy := h.Get("Content-Security-Policy")
		is.True(strings.Contains(policy, "default-src 'none'")) // nothing from elsewhere
		ownScript := regexp.MustCompile(`script-src 'sha256-[^']+'`)
		is.True(ownScript.MatchString(policy)) // its own script only, by hash
	})
	t.Run("the same map as json and mermaid", func(t *testing.T) {
		is := is.New(t)
		_, _, body := get("GET", "/map.json")
		var v mapView
		is.NoErr(json.Unmarshal([]byte(body), &v))
		is.Equal(addrsOf(v), strs(a, b, c))   // every node that answered
		is.Equal(v.Nodes[0].Addr, a.String()) // the seed first
		is.True(v.Nodes[0].Seed)              // marked
		// As the summary counts; b and c are listed by the seed only.
		want := mapCounts{Nodes: 3, Links: 4, Mutual: 4, Components: 1,
			InDegree: [3]int{1, 1, 2}, OutDegree: [3]int{1, 1, 2}, Unlisted: 2}
		is.Equal(v.Counts, want)
		is.True(!v.Nodes[0].Unlisted && v.Nodes[1].Unlisted) // a seed is never unlisted
		_, _, mmd := get("GET", "/map.mmd")
		is.True(strings.HasPrefix(mmd, "```mermaid\nflowchart LR\n")) // today's output
	})
}

// TestMapWebEvents: the first event holds the whole map; a node that stops
// is gone in the next; a page that goes frees its goroutine; and past
// maxWatchers pages the stream is refused.
func TestMapWebEvents(t *testing.T) {
	is := is.New(t)
	f := newFakeNet()
	a, b, c := f.peer(t), f.peer(t), f.peer(t)
	f.set(a, b, c)
	f.set(b, a, c)
	f.set(c, a, b)
	s := testMapServer(a)
	srv := httptest.NewServer(mapRoutes(s))
	t.Cleanup(srv.Close)
	_, ok := s.recrawl(context.Background())
	is.True(ok)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, events := openEvents(t, ctx, srv.URL)
	is.Equal(resp.StatusCode, 200)
	is.Equal(resp.Header.Get("Content-Type"), "text/event-stream")
	first := nextEvent(t, events)
	is.Equal(addrsOf(first), strs(a, b, c)) // the first event holds the whole map
	is.Equal(first.Counts.Links, 6)
	is.Equal(first.Seq, 1)

	// c stops, and leaves the others' lists, as a node that says goodbye does.
	f.set(a, b)
	f.set(b, a)
	f.stop(c)
	s.recrawl(context.Background())
	next := nextEvent(t, events)
	is.Equal(next.Seq, 2)
	is.Equal(addrsOf(next), strs(a, b)) // c is gone in the next event
	is.Equal(len(next.Nodes), 2)        // not even as an entry that did not answer
	is.Equal(next.Counts.Links, 2)

	watching := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.watchers)
	}
	t.Run("refused past maxMapWatchers", func(t *testing.T) {
		is := is.New(t)
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		for range maxMapWatchers - 1 { // as many pages as it serves, the one above included
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events", nil)
			resp, err := http.DefaultClient.Do(req)
			is.NoErr(err)
			defer resp.Body.Close()
		}
		resp, err := testClient.Get(srv.URL + "/events")
		is.NoErr(err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		is.Equal(resp.StatusCode, 503) // the pages it serves watch already
		want := fmt.Sprintf(`{"error":"%d pages watch the map already: close one"}`, maxMapWatchers)
		is.Equal(string(body), want+"\n")
		stop()
		eventually(t, 5*time.Second, func() bool { return watching() == 1 }) // those pages gone
	})

	is.Equal(watching(), 1) // the page above
	cancel()                // it goes
	eventually(t, 5*time.Second, func() bool { return watching() == 0 })
}

// TestMapWebEmptyAndCut: a crawl that finds nothing says why, and which
// seeds it tried; a crawl cut by the sample bound, by -m or by the page's
// limit says so, and its counts are still those of the whole crawl.
func TestMapWebEmptyAndCut(t *testing.T) {
	is := is.New(t)
	dead := deadAddr(t)
	s := testMapServer(dead)
	v, ok := s.recrawl(context.Background())
	is.True(ok)
	why := "no seed answered GET /nodes/: tried [" + dead.String() + "]"
	is.Equal(v.Why, why) // why, and the seeds tried
	is.Equal(v.Seeds, []string{dead.String()})
	is.Equal(v.Counts.Nodes, 0)
	is.Equal(len(v.Nodes), 1) // the seed, which did not answer
	is.True(!v.Nodes[0].Answered && v.Nodes[0].Seed)
	_, mmd := s.last()
	is.True(strings.HasSuffix(string(mmd), why+"\n")) // the text too

	// A maze: a lists 300 entries, more than a sample; b and c list a.
	f := newFakeNet()
	a, b, c := f.peer(t), f.peer(t), f.peer(t)
	maze := []Node{b, c}
	for i := range 298 {
		maze = append(maze, nodeAt("127.0.0.254", 1000+i)) // nothing listens there
	}
	f.set(a, maze...)
	f.set(b, a)
	f.set(c, a)
	s = testMapServer(a)
	s.max = 10
	v, _ = s.recrawl(context.Background())
	is.Equal(v.Cut.FullLists, 1) // a's list was read up to the sample bound
	is.Equal(v.Cut.Sample, maxSample)
	is.Equal(v.Cut.Max, 10)
	is.Equal(v.Cut.Unasked, 1+maxSample-10)    // -m stopped the crawl: heard of a and 256, asked 10
	is.Equal(v.Counts.Nodes+v.Counts.Dead, 10) // asked -m
	is.Equal(v.Nodes[0].Beyond, maxSample-9)   // a lists entries that are not on the map
	big := netMap{lists: map[Node][]Node{a: nil}}
	for i := range maxMapNodes + 10 {
		n := nodeAt("127.0.0.253", 1000+i)
		big.lists[a], big.dead = append(big.lists[a], n), append(big.dead, n)
	}
	cut := newMapView(big, []Node{a})
	in, component := mapDegrees(big)
	is.Equal(len(cut.Nodes), maxMapNodes)                 // the page's limit
	is.Equal(cut.Cut.LeftOut, 11)                         // says how many it left out
	is.Equal(cut.Counts, mapCountsOf(big, in, component)) // and counts the whole crawl
	is.Equal(cut.Counts.Dead, maxMapNodes+10)
}

// TestMapWebRun runs -role=map -web in process: it serves the page at
// the address it logs, sends a map to a page, and stops at once on
// cancel, though the page's stream is still open.
func TestMapWebRun(t *testing.T) {
	is := is.New(t)
	f := newFakeNet()
	a, b := f.peer(t), f.peer(t)
	f.set(a, b)
	f.set(b, a)
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"peerdisc", "-role=map", "-web", ":0", "-u", "100ms",
			"-di", a.IP.String(), "-dp", strconv.Itoa(int(a.Port))}, io.Discard, &stderr)
	}()
	// -web :0 listens on loopback.
	started := regexp.MustCompile(`msg=started role=map address=(127\.0\.0\.1:\d+) page=http://`)
	eventually(t, 10*time.Second, func() bool { return started.MatchString(stderr.String()) })
	url := "http://" + started.FindStringSubmatch(stderr.String())[1]
	streamCtx, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	_, events := openEvents(t, streamCtx, url)
	is.Equal(addrsOf(nextEvent(t, events)), strs(a, b)) // the map
	is.True(nextEvent(t, events).Seq > 1)               // and the next crawl's, -u later
	cancel()
	within(t, 5*time.Second, done, "run after cancel")
	is.True(strings.Contains(stderr.String(), "msg=stopped"))
}

// meshLists is a network of nodes whose first, a seed, lists 256 of the
// others (as its sample would), each other lists k at random and the next
// one, and the last 50, newcomers, are listed by the seed only. The random
// choices are seeded, so that runs compare.
func meshLists(nodes []Node, k int) map[Node][]Node {
	rng := rand.New(rand.NewPCG(1, 2))
	peers := len(nodes) - 50 // nodes[1:peers] list each other
	seed := slices.Clone(nodes[peers:])
	seed = append(seed, nodes[1:maxSample-len(seed)+1]...)
	lists := map[Node][]Node{nodes[0]: seed}
	for i := 1; i < len(nodes); i++ {
		list := []Node{nodes[1+i%(peers-1)]}
		for len(list) <= k {
			if j := 1 + rng.IntN(peers-1); j != i && !slices.Contains(list, nodes[j]) {
				list = append(list, nodes[j])
			}
		}
		lists[nodes[i]] = list
	}
	return lists
}

// BenchmarkMapCrawl1000: one crawl of the map server at the default -m
// 1000 over 1,000 processes on real loopback servers, each listing 11
// others (meshLists), with the map built and encoded as a page gets it. It reports the
// size of the map's JSON.
//
//	go test -run '^$' -bench MapCrawl1000 -benchtime 5x -count 3 .
func BenchmarkMapCrawl1000(b *testing.B) {
	f := newFakeNet()
	var nodes []Node
	for range 1000 {
		nodes = append(nodes, f.peer(b))
	}
	for n, list := range meshLists(nodes, 10) {
		f.set(n, list...)
	}
	s := testMapServer(nodes[0])
	b.ResetTimer()
	var v mapView
	for range b.N {
		v, _ = s.recrawl(context.Background())
	}
	b.StopTimer()
	if v.Counts.Nodes != 1000 {
		b.Fatalf("the crawl reached %d processes", v.Counts.Nodes)
	}
	view, _ := s.last()
	b.ReportMetric(float64(len(view))/1e3, "json-kB")
	b.ReportMetric(v.TookMS, "crawl-ms")
	c := v.Counts
	b.Logf("%d nodes, %d links, in-degree %v, %d unlisted",
		c.Nodes, c.Links, c.InDegree, c.Unlisted)
}
