//go:build linux

package main

// The README's commands, run as a newcomer would (see docs_test.go). Linux
// only: it runs them in a network namespace of its own.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
)

// TestReadmeAsANewcomer runs the README's commands in order, in a host of
// its own (a network namespace, so that 127.0.0.1:42020 is free), in a
// copy of the sources: the quick start, the build, a wrong flag, the
// walkthrough, the curl examples, the map, and the clean-up; and checks
// that each prints what the README shows, and that the clean-up leaves the
// directory as it was.
func TestReadmeAsANewcomer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program twice and runs five processes")
	}
	t.Parallel()
	host := newLab(t, 1).hosts[0]
	is := is.New(t)
	blocks := fences(t, "README.md")
	dir := t.TempDir()
	for _, pattern := range []string{"*.go", "*.html", "go.mod", "go.sum", "nodes.json"} { // map.html is embedded
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			data, err := os.ReadFile(f)
			is.NoErr(err)
			is.NoErr(os.WriteFile(filepath.Join(dir, f), data, 0o644))
		}
	}
	sh := func(script string) *exec.Cmd {
		cmd := exec.Command("ip", "netns", "exec", host.ns, "sh", "-c", script)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return cmd
	}
	commands := func(block string) (out []string) {
		for _, line := range strings.Split(block, "\n") {
			if cmd, _, _ := strings.Cut(line, "#"); strings.TrimSpace(cmd) != "" {
				out = append(out, strings.TrimSpace(cmd))
			}
		}
		return out
	}

	// Quick start: go run . -role=seed, then Ctrl-C (SIGINT to its process
	// group) stops it. The second command, go test ./..., is this test.
	quick := commands(fenceIn(t, blocks, "Quick start", "sh", 0))
	is.Equal(quick[1], "go test ./...")
	var seedLog syncBuffer
	goRun := sh(quick[0])
	goRun.Stderr = &seedLog
	is.NoErr(goRun.Start())
	eventually(t, 2*time.Minute, func() bool {
		return strings.Contains(seedLog.String(), "msg=started role=seed address=127.0.0.1:42020 file=.seed/nodes.json")
	})
	syscall.Kill(-goRun.Process.Pid, syscall.SIGINT)
	exited := make(chan error)
	go func() { exited <- goRun.Wait() }()
	within(t, 10*time.Second, exited, "go run after Ctrl-C")
	is.NoErr(os.RemoveAll(filepath.Join(dir, ".seed")))

	// Build, then -h.
	for _, c := range commands(fenceIn(t, blocks, "Build a binary", "sh", 0)) {
		out, err := sh(c).CombinedOutput()
		is.NoErr(err) // the README's build command runs
		if strings.HasSuffix(c, "-h") {
			is.True(strings.HasPrefix(string(out), "usage: ./peerdisc -role=seed|node|map")) // -h as the README says
		}
	}
	before, err := os.ReadDir(dir)
	is.NoErr(err)

	// A wrong flag: the README shows the command after "$ ", then its output.
	example := strings.SplitN(fenceIn(t, blocks, "Build a binary", "text", 0), "\n", 2)
	out, err := sh(strings.TrimPrefix(example[0], "$ ")).CombinedOutput()
	is.True(err != nil && err.(*exec.ExitError).ExitCode() == 2) // exit status 2
	is.Equal(string(out), example[1])                            // the README shows what it prints

	// The walkthrough: a seed and four nodes.
	cleanup := commands(fenceIn(t, blocks, "Stop and clean up", "sh", 0))
	t.Cleanup(func() { sh(cleanup[0]).Run() })
	is.NoErr(sh(fenceIn(t, blocks, "Start nodes and watch them meet", "sh", 0)).Run())
	seed := nodeAt("127.0.0.1", 42020)
	eventually(t, 30*time.Second, func() bool { return len(host.list(seed)) == 4 })

	// Its log lines have the README's form: the numbers, times, ports and
	// lists differ from run to run.
	shape := func(line string) *regexp.Regexp { return regexp.MustCompile("^" + logShape(line).String() + "$") }
	logLines := strings.Split(strings.TrimSpace(fenceIn(t, blocks, "Start nodes and watch them meet", "text", 0)), "\n")
	var got []string
	matched := func() bool { // each README line, in order, matches a line of the log
		data, _ := os.ReadFile(filepath.Join(dir, "node2.log"))
		got = strings.Split(string(data), "\n")
		at := 0
		for _, want := range logLines {
			for at < len(got) && !shape(want).MatchString(got[at]) {
				at++
			}
			if at++; at > len(got) {
				return false
			}
		}
		return true
	}
	for start := time.Now(); !matched(); time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("node2.log does not read as README.md shows it:\n%s\nREADME.md:\n%s", strings.Join(got, "\n"), strings.Join(logLines, "\n"))
		}
	}

	// The curl examples: where the README gives the answer, it is the answer.
	for _, line := range strings.Split(fenceIn(t, blocks, "Endpoints", "sh", 0), "\n") {
		c, comment, _ := strings.Cut(line, "#")
		if strings.TrimSpace(c) == "" {
			continue
		}
		out, err := sh(c).Output()
		is.NoErr(err)
		var got, want any
		is.NoErr(json.Unmarshal(out, &got)) // every answer is JSON
		if err := json.NewDecoder(strings.NewReader(comment)).Decode(&want); err == nil {
			is.Equal(got, want) // the answer the README shows
		}
	}

	// The map: the README's diagram and summary, with this run's ports.
	mapCmd := commands(fenceIn(t, blocks, "The network map", "sh", 0))[0]
	wantMap := "```mermaid\n" + fenceIn(t, blocks, "The network map", "mermaid", 0) + "```\n" + fenceIn(t, blocks, "The network map", "text", 0)
	var gotMap []byte
	eventually(t, 30*time.Second, func() bool {
		gotMap, _ = sh(mapCmd).Output()
		port := regexp.MustCompile(`:[0-9]{4,5}"`)
		return port.ReplaceAllString(string(gotMap), `:PORT"`) == port.ReplaceAllString(wantMap, `:PORT"`)
	})

	// Stop and clean up: exactly the processes started, and nothing left.
	pids, err := os.ReadFile(filepath.Join(dir, "peerdisc.pids"))
	is.NoErr(err)
	for _, c := range cleanup {
		is.NoErr(sh(c).Run())
	}
	for _, pid := range strings.Fields(string(pids)) {
		eventually(t, 5*time.Second, func() bool { return exec.Command("kill", "-0", pid).Run() != nil })
	}
	after, err := os.ReadDir(dir)
	is.NoErr(err)
	is.Equal(dirNames(after), dirNames(before)) // the directory as it was before the walkthrough
}
