//go:build windows

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"unsafe"
)

// lockFileEx is kernel32's LockFileEx, loaded when first called, so that the
// module needs nothing beyond the standard library.
var lockFileEx = syscall.NewLazyDLL("kernel32.dll").NewProc("LockFileEx")

// lockDir takes an exclusive lock on FILE.lock in the data directory and
// keeps it while the returned file stays open. Windows does not let anyone
// delete a file that is open this way, nor the directory holding it, and it
// drops the lock when the process dies.
func lockDir(dir, file string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, file+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	const exclusive, failImmediately = 2, 1
	var ol syscall.Overlapped
	flags := uintptr(exclusive | failImmediately)
	r, _, err := lockFileEx.Call(f.Fd(), flags, 0, 1, 0, uintptr(unsafe.Pointer(&ol)))
	if r == 0 {
		f.Close()
		if err == syscall.Errno(33) { // ERROR_LOCK_VIOLATION
			return nil, errLocked
		}
		return nil, err
	}
	return f, nil
}

// syncDir does nothing on Windows, which has no way to sync a directory: a
// directory opened to sync refuses it (Access is denied), which would fail
// every write. The rename is MoveFileEx's, which replaces the file whole,
// but a power cut right after it may undo it.
func syncDir(dir string) error { return nil }
