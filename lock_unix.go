//go:build unix

package main

import (
	"errors"
	"os"
	"syscall"
)

// lockDir takes an exclusive lock on the data directory itself and keeps it
// while the returned file stays open. A lock file could be deleted while the
// process runs, letting a second process in; a directory cannot be unlinked
// while it holds the data file. The OS drops the lock when the process dies,
// so even kill -9 never blocks a restart.
func lockDir(dir, file string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return f, nil
}

// syncDir makes a rename in dir durable: a crash after it returns cannot
// undo the rename.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
