//go:build !unix

package primary

import (
	"net"
	"os"
)

const supported = false

func tryLock(string) (*os.File, error) { return nil, ErrUnsupported }

func listenPrivate(string) (net.Listener, error) { return nil, ErrUnsupported }

func peerAllowed(net.Conn) error { return nil }
