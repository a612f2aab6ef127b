//go:build unix

package primary

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// maxSocketPath is the longest socket path every Unix accepts (sun_path is
// 104 bytes on macOS and the BSDs, 108 on Linux, both counting the NUL).
const maxSocketPath = 103

// listenPrivate listens on a Unix socket at path that only this user can
// connect to. The socket is bound inside a fresh 0700 directory, made
// 0600, and only then renamed to path, so there is no moment at which it
// exists under its public name with the umask's looser mode. The caller
// removes path when done (the listener does not unlink it on Close: by
// then the name may belong to a successor).
func listenPrivate(path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("listen %s: the path is %d bytes, over the %d a Unix socket allows; put the database in a shorter path", path, len(path), maxSocketPath)
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".nanovm-sock-")
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	if len(tmp) > maxSocketPath {
		// The private directory's name made it too long: bind in place
		// and tighten the mode at once. Another user could connect in
		// that instant only where peerAllowed cannot tell who they are
		// (outside Linux).
		tmp = path
	}
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("listen %s: chmod: %w", path, err)
	}
	if tmp == path {
		return ln, nil
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	return ln, nil
}
