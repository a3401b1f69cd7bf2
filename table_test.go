package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestPersistence(t *testing.T) {
	t.Run("round trip", func(t *testing.T) {
		is := is.New(t)
		dir := t.TempDir()
		a, b := Node{IP: "127.0.0.5", Port: 5000}, Node{IP: "::1", Port: 6000}
		tbl, err := openTable(dir, "nodes.json", self, 10, 8)
		is.NoErr(err)
		_, err = tbl.Add(a, b, Node{IP: "127.0.0.7", Port: 7000})
		is.NoErr(err)
		_, err = tbl.Remove(Node{IP: "127.0.0.7", Port: 7000})
		is.NoErr(err)
		body := string(tbl.Body())
		is.NoErr(tbl.Close())

		again, err := openTable(dir, "nodes.json", self, 10, 8)
		is.NoErr(err)
		defer again.Close()
		is.Equal(again.List(), []Node{a, b})                                                                  // same nodes, same order
		is.Equal(string(again.Body()), body)                                                                  // same bytes
		is.True(strings.Contains(body, "\n  {\n    \"ip_address\": \"127.0.0.5\",\n    \"port\": 5000\n  }")) // indented
	})
	t.Run("missing file is an empty table, written at once", func(t *testing.T) {
		is := is.New(t)
		dir := filepath.Join(t.TempDir(), "new", "dir")
		tbl, err := openTable(dir, "nodes.json", self, 10, 8)
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
		tbl, err := openTable(dir, "nodes.json", self, 10, 8)
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
		tbl, err := openTable(dir, "nodes.json", self, 10, 8)
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
				_, err := openTable(dir, "nodes.json", self, 10, 8)
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
		_, err := openTable(dir, "nodes.json", self, 2, 8)
		is.True(err != nil)                                // refused
		is.True(strings.Contains(err.Error(), "raise -m")) // says what to do
		onDisk, _ := os.ReadFile(path)
		is.Equal(onDisk, content) // untouched
	})
	t.Run("second open of the same file is refused", func(t *testing.T) {
		is := is.New(t)
		dir := t.TempDir()
		first, err := openTable(dir, "nodes.json", self, 10, 8)
		is.NoErr(err)
		_, err = openTable(dir, "nodes.json", self, 10, 8)
		is.True(err != nil)                              // locked
		is.True(strings.Contains(err.Error(), "in use")) // says why
		is.NoErr(first.Close())
		again, err := openTable(dir, "nodes.json", self, 10, 8)
		is.NoErr(err) // free once the first is closed
		again.Close()
	})
}

func TestLockSurvivesDeletion(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	first, err := openTable(dir, "nodes.json", self, 10, 8)
	is.NoErr(err)
	defer first.Close()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "nodes.json" {
			os.Remove(filepath.Join(dir, e.Name())) // every lock file there is; Windows refuses while it is held
		}
	}
	_, err = openTable(dir, "nodes.json", self, 10, 8)
	is.True(err != nil) // still locked
	is.True(strings.Contains(err.Error(), "in use"))
}

func TestRemovedDataDirectoryIsRecreated(t *testing.T) {
	is := is.New(t)
	dir := filepath.Join(t.TempDir(), "data")
	tbl, err := openTable(dir, "nodes.json", self, 10, 8)
	is.NoErr(err)
	defer tbl.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Skip("this platform does not remove a directory in use:", err)
	}
	n := Node{IP: "127.0.0.5", Port: 5}
	_, err = tbl.Add(n)
	is.NoErr(err) // the next write makes the directory again
	is.Equal(readNodesFile(t, filepath.Join(dir, "nodes.json")), []Node{n})
	_, err = openTable(dir, "nodes.json", self, 10, 8)
	is.True(err != nil) // and the new directory is locked too
}

// TestRoomByDiversity fills a seed's table (-m 100) from one /16, then
// lets other groups in: first come is not first kept.
func TestRoomByDiversity(t *testing.T) {
	is := is.New(t)
	tbl := newTable(t, 100)
	tbl.hostMax = 8
	var dead atomic.Value // the one incumbent that stops answering
	dead.Store(Node{})
	var mu sync.Mutex
	checks := map[Node]int{}
	h := remoteHandler(tbl, func(_ context.Context, n Node) error {
		mu.Lock()
		checks[n]++
		mu.Unlock()
		if n == dead.Load().(Node) || n.IP == "198.51.201.1" { // and a newcomer that does not answer either
			return &peerError{reason: "refused"}
		}
		return nil
	})
	from := func(ip string, port int) int { return ask(h, "POST", "/", ip+":4000", nodeJSON(ip, port)).Code }
	for i := range 100 {
		is.Equal(from(fmt.Sprintf("198.51.%d.%d", i/8, 1+i%8), 5000), 200) // one /16 fills the table
	}
	groups := func() map[string]int {
		count := map[string]int{}
		for _, n := range tbl.List() {
			g, _ := groupOf(n)
			count[g.String()]++
		}
		return count
	}
	for i := range 40 {
		ip := fmt.Sprintf("203.%d.0.1", i)
		is.Equal(from(ip, 5000), 200) // a newcomer from another group always gets in
		is.Equal(tbl.Len(), 100)      // in the place of an entry of the largest group
	}
	is.Equal(groups()["198.51.0.0/16"], 60)

	// Groups level out: a group that has as many as the largest waits for an incumbent to fail.
	for i := range 8 {
		is.Equal(from(fmt.Sprintf("203.0.0.%d", 2+i), 5000), 200) // 203.0/16 grows while 198.51/16 is larger
	}
	code := from("198.51.200.1", 5000)
	is.Equal(code, 409) // the largest group's newcomer, while its incumbents answer
	w := ask(h, "POST", "/", "198.51.200.1:4000", nodeJSON("198.51.200.1", 5000))
	is.True(strings.Contains(w.Body.String(), "198.51.0.0/16 has as many entries as any other")) // says why
	for range 30 {                                                                               // a random incumbent each time: some picked twice or more
		is.Equal(from("198.51.200.1", 5000), 409)
	}
	mu.Lock()
	is.Equal(checks[Node{IP: "198.51.200.1", Port: 5000}], 0) // refused without a check of its own: an incumbent answered
	for n, c := range checks {
		is.True(c <= 2 || !strings.HasPrefix(n.IP, "198.51.")) // an incumbent: once as it came in, once to keep its place for -u
	}
	mu.Unlock()
	for _, n := range tbl.List() {
		if g, _ := groupOf(n); g.String() == "198.51.0.0/16" && checks[n] == 1 {
			dead.Store(n) // one incumbent of the group stops answering: the last in the table not checked since it came in (an answer counts for -u)
		}
	}
	failed := false
	for i := 0; i < 2000 && !failed; i++ { // a random incumbent of about 50 is tested each time: the dead one is found in time (missed 2,000 times: e^-40)
		failed = from("198.51.201.1", 5000) == 422
	}
	is.True(failed)                      // the dead one was found, and the newcomer then failed its own check
	is.True(tbl.Has(dead.Load().(Node))) // so the dead one keeps its place, for the sweep to remove
	var got int
	for range 2000 {
		if got = from("198.51.200.1", 5000); got == 200 {
			break
		}
	}
	is.Equal(got, 200)                      // in, in the place of the one that failed its check
	is.True(!tbl.Has(dead.Load().(Node)))   // which is gone
	is.Equal(from("127.0.0.5", 5000), 409)  // loopback entries never make room
	is.Equal(groups()["198.51.0.0/16"], 52) // 100, less 40 and 8 for other groups; one out, one in
}

func TestSampleIsBalancedByGroup(t *testing.T) {
	is := is.New(t)
	var nodes []Node
	for i := range 1000 {
		nodes = append(nodes, Node{IP: fmt.Sprintf("198.51.%d.%d", i/250, 1+i%250), Port: 5000}) // one /16
	}
	for i := range 20 {
		nodes = append(nodes, Node{IP: fmt.Sprintf("203.%d.0.1", i), Port: 5000}) // 20 more groups
	}
	tbl := newTable(t, len(nodes), nodes...)
	tbl.rng = rand.New(rand.NewPCG(1, 2))
	big := 0
	for range 100 {
		sample, err := parseNodes(tbl.Sample(10, true), maxListEntries)
		is.NoErr(err)
		is.Equal(len(sample), 10)
		seen := map[Node]bool{}
		for _, n := range sample {
			is.True(!seen[n]) // no repeats
			seen[n] = true
			if strings.HasPrefix(n.IP, "198.51.") {
				big++
			}
		}
	}
	t.Logf("the /16 holding 98%% of the entries gave %d of 1,000 sampled", big)
	is.True(big <= 100) // about its share of the groups (1 in 21), not of the entries
}

// TestRemoveKeepsGroupsWhole removes nodes in one call, emptying some
// groups: samples never return a removed node, and still reach every group
// left, so the table's index by group matches its entries.
func TestRemoveKeepsGroupsWhole(t *testing.T) {
	is := is.New(t)
	var nodes, gone []Node
	for g := range 20 {
		for i := range 10 {
			n := Node{IP: fmt.Sprintf("203.%d.0.%d", g, 1+i), Port: 5000}
			nodes = append(nodes, n)
			if g < 5 || i%2 == 0 { // 5 groups emptied, half of each other one
				gone = append(gone, n)
			}
		}
	}
	tbl := newTable(t, len(nodes), nodes...)
	removed, err := tbl.Remove(append(gone, gone[0])...) // a node named twice is removed once
	is.NoErr(err)
	is.Equal(len(removed), len(gone))
	is.Equal(tbl.Len(), len(nodes)-len(gone))
	left := map[Node]bool{}
	for _, n := range tbl.List() {
		left[n] = true
	}
	groups := map[string]bool{}
	for range 50 {
		sample, err := parseNodes(tbl.Sample(10, true), maxListEntries) // 10 of 75: the draw by group
		is.NoErr(err)
		for _, n := range sample {
			is.True(left[n]) // never a removed node
			g, _ := groupOf(n)
			groups[g.String()] = true
		}
	}
	is.Equal(len(groups), 15) // every group left, none of those emptied
	_, err = tbl.Add(gone[0])
	is.NoErr(err)
	is.True(strings.Contains(string(tbl.Sample(100, true)), gone[0].IP)) // an emptied group comes back
}

// TestDataDirCheckedAtStart: a data directory that cannot be written stops
// the process at start, not at its first change.
func TestDataDirCheckedAtStart(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	is.NoErr(os.WriteFile(filepath.Join(dir, "file"), nil, 0o644))
	_, err := openTable(filepath.Join(dir, "file", "sub"), "nodes.json", Node{IP: "127.0.0.1", Port: 1}, 10, 8)
	is.True(err != nil && strings.Contains(err.Error(), "Give -d a directory this user can write to")) // says what to do
}

// TestWritesAreCoalesced: an add-then-DELETE loop, from 8 callers at
// once against a table of 1,000 entries (a 62 kB file), writes the file at
// most once per writeGap, and every acknowledged add is on disk when it is
// answered.
func TestWritesAreCoalesced(t *testing.T) {
	is := is.New(t)
	tbl := newTable(t, 2000, distinctNodes(1000)...)
	tbl.gap = writeGap // as shipped
	h := newHandler(tbl, alive)
	start := time.Now()
	operator := func(method string, n Node) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/nodes/", strings.NewReader(nodeJSON(n.IP, n.Port)))
		req.RemoteAddr = "127.0.0.1:4000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	forEachIndex(40, 8, func(i int) {
		n := Node{IP: "127.0.0.1", Port: 10000 + i}
		is.Equal(operator("POST", n).Code, 200)
		onDisk, err := os.ReadFile(tbl.path)
		is.NoErr(err)
		listed, err := parseNodes(onDisk, 2000)
		is.NoErr(err)
		is.True(slices.Contains(listed, n)) // on disk once acknowledged (nobody else removes it)
		is.Equal(operator("DELETE", n).Code, 200)
	})
	took := time.Since(start)
	tbl.mu.Lock()
	writes := tbl.writes
	tbl.mu.Unlock()
	t.Logf("80 changes in %v: %d writes of the file", took.Round(time.Millisecond), writes)
	is.True(writes <= int(took/writeGap)+1) // at most one write per writeGap
}
