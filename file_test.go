package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matryer/is"
)

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

// TestDataDirCheckedAtStart: a data directory that cannot be written stops
// the process at start, not at its first change.
func TestDataDirCheckedAtStart(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	is.NoErr(os.WriteFile(filepath.Join(dir, "file"), nil, 0o644))
	_, err := openTable(filepath.Join(dir, "file", "sub"), "nodes.json", nodeAt("127.0.0.1", 1), 10, 8)
	is.True(err != nil && strings.Contains(err.Error(), "Give -d a directory this user can write to")) // says what to do
}
