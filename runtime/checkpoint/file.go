package checkpoint

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ReadSignerKeyFile reads a signer key file. Like ssh with a private key,
// it refuses a file that group or others can access.
func ReadSignerKeyFile(path string) (*Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint signer key %q: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("read checkpoint signer key %q: mode %v is accessible by group or others; chmod 600 it", path, fi.Mode().Perm())
	}
	return readParsed(path, "checkpoint signer key", func(b []byte) (*Signer, error) { return NewSigner(string(b)) })
}

// ReadVerifierKeyFile reads a file of verifier keys, one a line.
func ReadVerifierKeyFile(path string) ([]string, error) {
	return readParsed(path, "checkpoint verifier keys", ParseVerifierKeys)
}

// ReadFile reads a signed checkpoint file, refusing one over MaxNoteSize.
func ReadFile(path string) ([]byte, error) {
	return readParsed(path, "checkpoint", func(b []byte) ([]byte, error) { return b, nil })
}

// readParsed reads the file at path with readSmall and parses it; what
// names the file in a read error.
func readParsed[T any](path, what string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	b, err := readSmall(path)
	if err != nil {
		return zero, fmt.Errorf("read %s %q: %w", what, path, err)
	}
	v, err := parse(b)
	if err != nil {
		return zero, fmt.Errorf("read %q: %w", path, err)
	}
	return v, nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxNoteSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxNoteSize {
		return nil, fmt.Errorf("%w: over %d bytes", ErrMalformed, MaxNoteSize)
	}
	return b, nil
}

// WriteFile replaces path with data atomically: a temporary file in the
// same folder, written and synced, renamed over path, then the folder
// synced, so a crash leaves the old checkpoint or the new one, never part
// of one. mode is the file's permission bits.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	name := tmp.Name()
	_, werr := tmp.Write(data)
	cherr := tmp.Chmod(mode)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, cherr, serr, cerr); err != nil {
		_ = os.Remove(name)
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		_ = os.Remove(name)
		return fmt.Errorf("write %q: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("write %q: sync folder: %w", path, err)
		}
	}
	return nil
}

// CreateFile writes data to a new file, refusing to replace one: a key
// file is never overwritten.
func CreateFile(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %q: %w", path, err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("create %q: %w", path, err)
	}
	return nil
}
