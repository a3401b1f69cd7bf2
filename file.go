package main

// The data file on disk: read at start, replaced atomically, in a directory
// that is locked (lock_unix.go, lock_windows.go) and made again if someone
// removes it.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// errLocked means another process holds the data directory's lock.
var errLocked = errors.New("in use by another process")

// Close releases the lock. The table must not be used after.
func (t *Table) Close() error {
	if t.lock == nil {
		return nil
	}
	return t.lock.Close() // closing the descriptor releases the lock
}

// load reads the file into an empty table and rewrites it if the table it
// gives differs from its bytes (duplicates, this process itself, another layout).
func (t *Table) load() error {
	temps, _ := filepath.Glob(t.path + ".tmp-*")
	for _, tmp := range temps {
		os.Remove(tmp) // an unfinished write from a crash; the file itself is intact
	}
	data, err := os.ReadFile(t.path) // nil if missing
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if data != nil {
		nodes, err := parseNodes(data, t.max+1) // +1: the file may list this process
		if errors.Is(err, errTooMany) {
			return fmt.Errorf("%s holds more than -m %d nodes: raise -m", t.path, t.max)
		} else if err != nil {
			return fmt.Errorf("%s: %w; fix or remove the file", t.path, err)
		}
		for _, n := range nodes {
			if n != t.self && !t.known[n] {
				t.insert(n)
			}
		}
		if len(t.nodes) > t.max {
			return fmt.Errorf("%s holds %d nodes, more than -m %d: raise -m", t.path, len(t.nodes), t.max)
		}
	}
	body := encodeNodes(t.nodes)
	t.publish(t.nodes, body)
	if !bytes.Equal(body, data) {
		return writeFile(t.path, body)
	}
	return nil
}

// recreate makes the data directory again after someone removed it, and
// locks the new one. Only the caller writing the file calls it.
func (t *Table) recreate() error {
	dir := filepath.Dir(t.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := lockDir(dir, filepath.Base(t.path))
	if err != nil {
		return err
	}
	t.lock.Close()
	t.lock = lock
	return nil
}

// writeFile replaces path with data so that a crash at any moment leaves
// either the old file or the new one, never a mix: write a temp file beside
// it, sync it, rename it over path, and sync the directory.
func writeFile(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// save returns once change number upTo is on disk. The first caller to find no
// write under way writes everything changed so far; callers arriving during
// that write wait, and the next of them writes all their changes at once
// (group commit). t.mu is held on entry and exit, and released while writing.
func (t *Table) save(upTo uint64) error {
	for t.saved < upTo {
		if t.path == "" { // in memory only: nothing to write; encode when asked
			t.saved = t.changes
			t.body.Store(nil)
			t.public.Store(nil)
			return nil
		}
		if t.writing {
			t.written.Wait()
			continue
		}
		t.writing = true
		batch, nodes := t.changes, slices.Clone(t.nodes)
		t.mu.Unlock()
		body := encodeNodes(nodes)
		err := writeFile(t.path, body)
		if errors.Is(err, fs.ErrNotExist) {
			if err = t.recreate(); err == nil {
				err = writeFile(t.path, body)
			}
		}
		t.mu.Lock()
		t.writing = false
		t.written.Broadcast()
		if err != nil {
			return fmt.Errorf("save %s: %w", t.path, err)
		}
		t.saved = batch
		t.publish(nodes, body)
	}
	return nil
}
