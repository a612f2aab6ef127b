package store

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

var (
	// ErrDiskFull is returned, wrapping the OS error, when a write fails
	// because the device holding the file is full (ENOSPC, or EDQUOT: the
	// user's quota). A step whose commit fails so is not committed; the
	// run stays resumable and finishes once space is freed.
	ErrDiskFull = errors.New("disk full")

	// ErrNotWritable is returned by Open, wrapping the OS error, when the
	// database file or its directory cannot be written: a read-only file
	// system, or permissions.
	ErrNotWritable = errors.New("not writable")
)

// EnvError classifies an error from the file system: a full device wraps
// ErrDiskFull, a read-only file system or a permission refusal wraps
// ErrNotWritable, each saying what to do; anything else is returned as
// is. Errors already classified are left alone.
func EnvError(err error) error {
	switch {
	case err == nil || errors.Is(err, ErrDiskFull) || errors.Is(err, ErrNotWritable):
		return err
	case isDiskFull(err):
		return fmt.Errorf("%w: no space left on the device holding the database; free some and retry (interrupted runs resume): %w", ErrDiskFull, err)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: the file system is read-only; point --db (NANO_VM_MCP_DB) at a writable place: %w", ErrNotWritable, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: permission denied; the server needs to read and write the database file and create files beside it: %w", ErrNotWritable, err)
	}
	return err
}

func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
