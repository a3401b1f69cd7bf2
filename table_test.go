package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestPersistence(t *testing.T) {
	t.Run("round trip", func(t *testing.T) {
		is := is.New(t)
		dir := t.TempDir()
		a, b := nodeAt("127.0.0.5", 5000), nodeAt("::1", 6000)
		tbl, err := openTable(dir, "nodes.json", self, 10, 8)
		is.NoErr(err)
		_, err = tbl.Add(a, b, nodeAt("127.0.0.7", 7000))
		is.NoErr(err)
		_, err = tbl.Remove(nodeAt("127.0.0.7", 7000))
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
		is.Equal(tbl.List(), []Node{nodeAt("127.0.0.5", 5000)}) // duplicate and self dropped
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

func TestRemovedDataDirectoryIsRecreated(t *testing.T) {
	is := is.New(t)
	dir := filepath.Join(t.TempDir(), "data")
	tbl, err := openTable(dir, "nodes.json", self, 10, 8)
	is.NoErr(err)
	defer tbl.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Skip("this platform does not remove a directory in use:", err)
	}
	n := nodeAt("127.0.0.5", 5)
	_, err = tbl.Add(n)
	is.NoErr(err) // the next write makes the directory again
	is.Equal(readNodesFile(t, filepath.Join(dir, "nodes.json")), []Node{n})
	_, err = openTable(dir, "nodes.json", self, 10, 8)
	is.True(err != nil) // and the new directory is locked too
}

// TestWritesAreCoalesced: an add-then-DELETE loop, from 8 callers at
// once against a table of 1,000 entries (a 62 kB file), keeps the disk
// writing a tenth of the time at most: after each write, it rests
// writeRest times as long as the write took, and the changes meanwhile
// share the next. Every acknowledged add is on disk when it is answered.
func TestWritesAreCoalesced(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	tbl := newTable(t, 2000, distinctNodes(1000)...)
	h := newHandler(tbl, alive)
	operator := func(method string, n Node) *httptest.ResponseRecorder {
		req := newRequest(method, "/nodes/", strings.NewReader(nodeBody(n)))
		req.RemoteAddr = "127.0.0.1:4000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	writes := map[time.Time]time.Duration{} // each write's end, and how long it took
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() { // the table's record of its last write, read far more often than it writes
		defer close(watched)
		for {
			tbl.mu.Lock()
			writes[tbl.wrote] = tbl.cost
			tbl.mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	start := time.Now()
	forEachIndex(40, 8, func(i int) {
		n := nodeAt("127.0.0.1", 10000+i)
		is.Equal(operator("POST", n).Code, 200)
		onDisk, err := os.ReadFile(tbl.path)
		is.NoErr(err)
		listed, err := parseNodes(onDisk, 2000)
		is.NoErr(err)
		is.True(slices.Contains(listed, n)) // on disk once acknowledged (nobody else removes it)
		is.Equal(operator("DELETE", n).Code, 200)
	})
	took := time.Since(start)
	close(stop)
	<-watched
	var writing, longest time.Duration
	for at, cost := range writes {
		if at.After(start) {
			writing += cost
			longest = max(longest, cost)
		}
	}
	t.Logf("80 changes in %v: %d writes of the file, %v of writing", took.Round(time.Millisecond), len(writes)-1,
		writing.Round(time.Millisecond))
	atMost(t, "time spent writing, of the time the changes took (plus one write)",
		writing, took/(writeRest+1)+longest)
}

// TestHungEntriesReachNobody: entries whose checks time out, which the
// cap on removals by timeout keeps, are in no sample until they answer
// again; GET /nodes/ and the file still list them.
func TestHungEntriesReachNobody(t *testing.T) {
	is := is.New(t)
	var hang atomic.Bool
	hang.Store(true)
	sleepy := func() Node {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hang.Load() {
				<-r.Context().Done() // accepts, and answers nothing in time
				return
			}
			io.WriteString(w, "{}")
		}))
		t.Cleanup(srv.Close)
		return nodeOf(t, srv.URL)
	}
	seed := startPeer(t, "127.0.0.1",
		config{role: "seed", max: 20, fails: 2, timeout: seconds(300 * time.Millisecond)})
	var live, hung []Node
	for _, p := range startPeers(t, 5, config{max: 10}) {
		live = append(live, p.self())
	}
	for range 5 {
		hung = append(hung, sleepy())
	}
	_, err := seed.table.Add(append(live, hung...)...)
	is.NoErr(err)
	sampled := func() []Node {
		got, err := parseNodes(seed.table.Sample(20, thisHost), 20)
		is.NoErr(err)
		slices.SortFunc(got, compareNodes)
		return got
	}
	for range 2 {
		seed.seedRound(context.Background())
	}
	// -f 2: one hung entry gone, as timeouts remove 1 in 100 (at least one); 4 kept
	is.Equal(seed.table.Len(), 9)
	slices.SortFunc(live, compareNodes)
	is.Equal(sampled(), live)                           // samples give only those that answered
	is.Equal(len(listOf(seed.self())), 9)               // GET /nodes/ gives the whole table
	is.Equal(len(readNodesFile(t, seed.table.path)), 9) // and so does the file
	hang.Store(false)
	seed.seedRound(context.Background())
	is.Equal(len(sampled()), 9) // each in samples again once it answers
}

// TestOutboundCountsEntries: the peers a node chose itself are its entries
// less those taken by their announce, counted one by one, however those
// group.
func TestOutboundCountsEntries(t *testing.T) {
	is := is.New(t)
	tbl := memTable(nodeAt("127.0.0.1", 1), 10, 8)
	_, err := tbl.Add(nodeAt("198.51.100.1", 1), nodeAt("203.0.113.1", 1))
	is.NoErr(err)
	_, err = tbl.AddAnnounced(20, nodeAt("192.0.2.1", 1), nodeAt("192.0.2.2", 1), nodeAt("192.0.2.3", 1))
	is.NoErr(err)
	is.Equal(tbl.Outbound(), 2) // three taken by announce, of one group
}

// TestAnswerEndsAFailingRow: an entry that failed the round's check and
// then answered another (its announce's, a DELETE's) has not failed its
// last check: it counts as failing no more, and is in samples again.
func TestAnswerEndsAFailingRow(t *testing.T) {
	is := is.New(t)
	tbl := memTable(self, 10, 8)
	n := nodeAt("198.51.100.1", 1)
	_, err := tbl.Add(n)
	is.NoErr(err)
	is.Equal(tbl.Checked([]Node{n}, []outcome{failed}, 2), nil) // one of -f 2: kept, failing
	is.Equal(tbl.Failing(), 1)
	is.Equal(string(tbl.Sample(10, thisHost)), "[]\n")
	tbl.Answered(n, false)
	is.Equal(tbl.Failing(), 0)
	is.Equal(string(tbl.Sample(10, thisHost)), `[{"ip_address":"198.51.100.1","port":1}]`+"\n")
}

// TestOnlyRefusalsAreRemembered: a candidate that refused our announce is
// remembered, and backed off from; one that took it leaves no record.
func TestOnlyRefusalsAreRemembered(t *testing.T) {
	is := is.New(t)
	tbl := memTable(self, 10, 8)
	took, refused := nodeAt("198.51.100.1", 1), nodeAt("198.51.100.2", 1)
	tbl.Refused(took, false)
	tbl.Refused(refused, true)
	is.Equal(len(tbl.candidates), 1)
	is.True(!tbl.BackingOff(took))
	is.True(tbl.BackingOff(refused))
}

// TestKeepWaitsForNoOtherWrite: a known node's announce waits for nothing
// once the node is on disk: not for a write of other changes under way,
// which may rest writeRest times the last write's cost first (slow disks:
// every peer's check of a known node would time out behind it).
func TestKeepWaitsForNoOtherWrite(t *testing.T) {
	is := is.New(t)
	n := nodeAt("198.51.100.1", 5000)
	tbl := newTable(t, 10, n) // n on disk
	tbl.mu.Lock()
	tbl.changes++ // another change, waiting for a write under way
	tbl.writing = true
	tbl.mu.Unlock()
	kept := make(chan error, 1)
	go func() { kept <- tbl.Keep(n) }()
	select {
	case err := <-kept:
		is.NoErr(err)
	case <-time.After(10 * time.Second): // a bound on a wait that should not happen at all
		t.Error("Keep waited for a write of other changes")
		tbl.mu.Lock()
		tbl.writing = false
		tbl.written.Broadcast()
		tbl.mu.Unlock()
		<-kept
	}
}
