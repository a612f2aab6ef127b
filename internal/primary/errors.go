package primary

import "errors"

var (
	// ErrNoPrimary is returned by Serve when the database is held by a
	// process that serves no socket (a CLI command such as `nano-vm-mcp
	// run`, or a server of another release) for longer than
	// Options.WaitTimeout.
	ErrNoPrimary = errors.New("database is held by a process that serves no socket")

	// ErrUnsupported is returned by Serve on platforms without flock and
	// Unix sockets.
	ErrUnsupported = errors.New("sharing a database between processes is not supported on this platform")

	// ErrSocketBusy is returned when this process holds the election lock
	// yet another process still answers on the socket: something other
	// than a nano-vm-mcp primary (or a release without the election lock)
	// serves that path, and it is left alone.
	ErrSocketBusy = errors.New("socket is served by a process that does not hold the election lock")
)
