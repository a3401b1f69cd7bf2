//go:build unix

package main

// Process tests that need POSIX signals: SIGTERM and SIGINT as a clean stop
// (Ctrl-C), and SIGSTOP to pause a process. Windows has neither.

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestProcessSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			is := is.New(t)
			dir := t.TempDir()
			args := []string{"-role=seed", "-p", "0", "-d", "data", "-t", "10"}
			p := startProc(t, dir, args...)

			// An announce whose connect-back hangs would keep a request in
			// flight for the 10 s timeout, far past the shutdown.
			hung := hungAddr(t)
			answer := make(chan int, 1)
			go func() {
				body, _ := json.Marshal(hung.node)
				resp, err := testClient.Post("http://"+p.addr.String()+"/", "application/json", bytes.NewReader(body))
				if err != nil {
					answer <- 0
					return
				}
				resp.Body.Close()
				answer <- resp.StatusCode
			}()
			within(t, 10*time.Second, hung.accepted, "the seed checks the announcer")

			start := time.Now()
			p.cmd.Process.Signal(sig)
			is.Equal(p.wait(t, 10*time.Second), 0) // clean exit
			t.Logf("exited %v after %v", time.Since(start).Round(time.Millisecond), sig)
			is.Equal(<-answer, 503) // the request in flight was answered, not cut

			again := startProc(t, dir, args...)
			is.True(listOf(again.addr) != nil) // a restart on the same file serves at once
		})
	}
}

// TestProcessFailThreshold stops a node with SIGSTOP, just after a round of
// the seed. With -f 3 it stays listed once a check of it has failed; with
// -f 1 it is dropped.
func TestProcessFailThreshold(t *testing.T) {
	for _, tc := range []struct {
		fails    string
		wantKept bool
	}{{"3", true}, {"1", false}} {
		t.Run("-f "+tc.fails, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			dir := t.TempDir()
			seed := startProc(t, dir, "-role=seed", "-p", "0", "-u", "1", "-t", "300ms", "-f", tc.fails)
			node := startProc(t, dir, "-role=node", "-i", "127.0.0.2", "-u", "1",
				"-di", "127.0.0.1", "-dp", strconv.Itoa(int(seed.addr.Port)))
			eventually(t, 10*time.Second, func() bool { return lists(seed.addr, node.addr) })

			rounds := strings.Count(seed.stderr.String(), "msg=round")
			eventually(t, 5*time.Second, func() bool { return strings.Count(seed.stderr.String(), "msg=round") > rounds })
			before := seed.stderr.String()
			node.cmd.Process.Signal(syscall.SIGSTOP)
			stopped := time.Now()
			if tc.wantKept {
				failed := regexp.MustCompile(`msg=round known=(\d+) .*removed=(\S*) .*failing=1 `)
				var line []string
				eventually(t, 5*time.Second, func() bool { // a check failed during the outage
					line = failed.FindStringSubmatch(seed.stderr.String()[len(before):])
					return line != nil
				})
				is.Equal(line[1], "1")  // and failed checks short of -f do not remove it: the seed's round still knew it
				is.Equal(line[2], "[]") // and removed nobody
			} else {
				took := eventually(t, 5*time.Second, func() bool { return !lists(seed.addr, node.addr) })
				t.Logf("stopped node dropped after %v", took)
			}
			node.cmd.Process.Signal(syscall.SIGCONT)
			t.Logf("node stopped for %v", time.Since(stopped).Round(time.Millisecond))
		})
	}
}

// TestProcessLeave stops a node with SIGINT (Ctrl-C): the seed, at its
// default -u 60, forgets it at once instead of at its next round, and the
// node exits promptly although one of its peers never answers.
func TestProcessLeave(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	dir := t.TempDir()
	seed := startProc(t, dir, "-role=seed", "-p", "0", "-d", "seed")
	hung := hungAddr(t)
	writeNodesFile(t, filepath.Join(dir, "node"), []Node{hung.node})
	node := startProc(t, dir, "-role=node", "-p", "0", "-d", "node/data", "-t", "1", "-f", "3",
		"-di", seed.addr.IP.String(), "-dp", strconv.Itoa(int(seed.addr.Port)))
	eventually(t, 10*time.Second, func() bool { return lists(seed.addr, node.addr) })
	within(t, 10*time.Second, hung.accepted, "the node's round reached the peer that never answers")

	start := time.Now()
	node.cmd.Process.Signal(os.Interrupt)
	gone := eventually(t, 10*time.Second, func() bool { return !lists(seed.addr, node.addr) })
	is.Equal(node.wait(t, 10*time.Second), 0) // a clean exit
	t.Logf("the seed forgot the node %v after Ctrl-C; the node exited after %v", gone.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	is.Equal(strings.Count(seed.stderr.String(), "msg=round"), 1) // the seed's first round only: its next is a minute away
}
