package main

// The data file on disk: replaced atomically, in a directory that is locked
// (lock_unix.go, lock_windows.go) and made again if someone removes it.

import (
	"errors"
	"os"
	"path/filepath"
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
