//go:build linux

package primary

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// peerAllowed refuses a peer running as another user. The socket's 0600
// mode already keeps others out; this is the second, independent check
// (root, which ignores file modes, is the one user it does stop).
func peerAllowed(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return fmt.Errorf("peer credentials: %w", credErr)
	}
	if int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("peer uid %d is not this process's uid %d", cred.Uid, os.Getuid())
	}
	return nil
}
