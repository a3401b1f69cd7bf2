package main

// The data file on disk: replaced atomically, in a directory that is
// locked and synced as each system allows (lock_unix.go, lock_windows.go)
// and checked at start; and the bytes of a list of nodes, the file's and
// GET /nodes/'s alike. Table.load reads the file at start, and Table.save
// writes it (table.go); parseNodes reads a list token by token, so that a
// hostile one costs little (hostilelists.go).

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// errLocked means another process holds the data directory's lock.
var errLocked = errors.New("in use by another process")

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
	return syncDir(filepath.Dir(path))
}

// encodeNodes gives the bytes of the nodes file, which are also the body of GET /nodes/.
func encodeNodes(nodes []Node) []byte {
	if len(nodes) == 0 {
		return []byte("[]\n")
	}
	body, err := json.MarshalIndent(nodes, "", "  ")
	if err != nil {
		panic(err) // a []Node always encodes
	}
	return append(body, '\n')
}

// writable makes dir if it is missing and checks, at start rather than at the
// first change, that this process can write its file there.
func writable(dir, file string) error {
	err := os.MkdirAll(dir, 0o755)
	if err == nil {
		var tmp *os.File
		if tmp, err = os.CreateTemp(dir, file+".tmp-*"); err == nil {
			tmp.Close()
			err = os.Remove(tmp.Name())
		}
	}
	if err != nil {
		return fmt.Errorf("cannot write the data file %s: %v. "+
			"Give -d a directory this user can write to", filepath.Join(dir, file), err)
	}
	return nil
}
