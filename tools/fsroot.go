package tools

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"
)

// mountFS serves one mount to the guest through an os.Root: every path the
// guest names is resolved by the standard library one component at a time
// beneath the mount's directory, following symbolic links only while they
// stay beneath it, so no "..", absolute path, symlink (pre-existing or
// guest-made), hard link or rename reaches outside the mount. It
// implements wazero's experimental sys.FS and is mounted with
// sysfs.FSConfig.WithSysFSMount in place of wazero's path-based DirFS.
//
// The directory is opened when the tool is prepared and re-opened (and
// re-checked against the protected paths) only when host_path names a
// different directory by the time an instance opens its mount: so a
// directory the operator replaces is followed, but a symlink swapped into
// host_path after the check cannot lead a later call anywhere the check
// would have refused.
//
// A read-only mount refuses every write with EROFS: open for writing,
// create, truncate, append, mkdir, unlink, rmdir, rename, link, symlink,
// chmod and utimes. A guest-made symlink must name something at or below
// its own directory (relative, no ".." component), so that a host process
// following it later is not led out either.
//
// It is safe for concurrent use: instances of one tool share it.
type mountFS struct {
	mount   Mount
	host    *Host
	mu      sync.Mutex // serialises reopen
	root    *os.Root   // guarded by mu; a replaced root is left to its finalizer
	rootDir string     // the resolved directory root was opened on
}

// errMountEscape is the errno for a path that would leave the mount, and
// for a symlink a guest may not create. os.Root reports the first as an
// unexported error that is no syscall.Errno.
const errMountEscape = experimentalsys.EPERM

// openMount opens m's directory as a mountFS, refusing a directory that
// is, contains or lies inside one of the server's protected paths.
func (h *Host) openMount(m Mount) (*mountFS, error) {
	fsys := &mountFS{mount: m, host: h}
	r, dir, err := h.openMountRoot(m)
	if err != nil {
		return nil, err
	}
	fsys.root, fsys.rootDir = r, dir
	return fsys, nil
}

// openMountRoot resolves m.HostPath, checks it against the protected paths
// and opens it, checking that what it opened is the directory it checked.
func (h *Host) openMountRoot(m Mount) (*os.Root, string, error) {
	if err := h.checkMount(m); err != nil {
		return nil, "", err
	}
	dir, err := resolvePath(m.HostPath)
	if err != nil {
		return nil, "", fmt.Errorf("mount %s: host_path %q: %w", m.GuestPath, m.HostPath, err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, "", fmt.Errorf("mount %s: open host_path %q: %w", m.GuestPath, m.HostPath, err)
	}
	got, err1 := r.Stat(".")
	want, err2 := os.Lstat(dir)
	if err := errors.Join(err1, err2); err != nil || !os.SameFile(got, want) {
		_ = r.Close()
		if err == nil {
			err = errors.New("the directory changed while it was being opened")
		}
		return nil, "", fmt.Errorf("mount %s: open host_path %q: %w", m.GuestPath, m.HostPath, err)
	}
	return r, dir, nil
}

// current returns the root to resolve paths in. When reopen is set (an
// instance opening its mount), it first checks that host_path still names
// the directory the root holds and, if not, opens the new one.
func (f *mountFS) current(reopen bool) (*os.Root, experimentalsys.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !reopen {
		return f.root, 0
	}
	now, err := os.Stat(f.mount.HostPath)
	if err != nil {
		// Gone, or unreadable: to the guest the mount is not there
		// (wazero expects ENOENT when an instance opens its mount).
		return nil, experimentalsys.ENOENT
	}
	if held, err := f.root.Stat("."); err == nil && os.SameFile(held, now) {
		return f.root, 0
	}
	r, dir, err := f.host.openMountRoot(f.mount)
	if err != nil {
		// To the guest the mount is gone; the operator is told why.
		f.host.opts.Logger.Warn("mount not reopened", "mount", f.mount.GuestPath, "host_path", f.mount.HostPath, "err", err)
		return nil, experimentalsys.ENOENT
	}
	// The old root may still be in use by another instance: leave it to
	// its finalizer rather than close it under that instance.
	f.root, f.rootDir = r, dir
	return r, 0
}

// String implements fmt.Stringer (wazero prints it in errors).
func (f *mountFS) String() string { return f.mount.HostPath }

// rel turns a guest path, relative to the mount (wazero strips the guest
// prefix; a leading "/" can remain), into a name for os.Root.
func rel(p string) string {
	p = strings.TrimLeft(p, "/")
	if p == "" {
		return "."
	}
	return p
}

// errnoOf maps an os.Root error to an errno. os.Root refuses a path that
// leaves the root with an error that is no syscall.Errno, which wazero
// would report as EIO: report EPERM, as wazero does for "..".
func errnoOf(err error) experimentalsys.Errno {
	if err == nil {
		return 0
	}
	e := experimentalsys.UnwrapOSError(err)
	if e == experimentalsys.EIO {
		var se syscall.Errno
		if !errors.As(err, &se) {
			return errMountEscape
		}
	}
	return e
}

// writes is every open flag that may change the file system.
const writes = experimentalsys.O_WRONLY | experimentalsys.O_RDWR | experimentalsys.O_CREAT | experimentalsys.O_TRUNC | experimentalsys.O_APPEND

// OpenFile implements sys.FS.
func (f *mountFS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	name := rel(p)
	isDir := flag&experimentalsys.O_DIRECTORY != 0
	if isDir && flag&(experimentalsys.O_WRONLY|experimentalsys.O_RDWR) != 0 {
		return nil, experimentalsys.EISDIR
	}
	if f.mount.ReadOnly && flag&writes != 0 {
		return nil, experimentalsys.EROFS
	}
	r, errno := f.current(name == ".")
	if errno != 0 {
		return nil, errno
	}
	if flag&experimentalsys.O_NOFOLLOW != 0 {
		// os.Root follows a final symlink that stays inside; WASI asked
		// not to follow it at all.
		if fi, err := r.Lstat(name); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, experimentalsys.ELOOP
		}
	}
	osf, err := r.OpenFile(name, osOpenFlag(flag), perm&fs.ModePerm)
	if err != nil {
		return nil, errnoOf(err)
	}
	file, errno := f.newMountFile(osf, name, flag, perm&fs.ModePerm)
	if errno != 0 {
		return nil, errno
	}
	if isDir {
		if d, errno := file.IsDir(); errno != 0 || !d {
			_ = file.Close()
			if errno == 0 {
				errno = experimentalsys.ENOTDIR
			}
			return nil, errno
		}
	}
	return file, 0
}

// osOpenFlag converts the flags os.File knows; O_DIRECTORY is checked
// after the open, O_NOFOLLOW before it, and O_DSYNC/O_RSYNC become the
// stronger O_SYNC. O_NONBLOCK matters only for pipes and is dropped.
func osOpenFlag(flag experimentalsys.Oflag) int {
	var o int
	switch flag & (experimentalsys.O_RDONLY | experimentalsys.O_RDWR | experimentalsys.O_WRONLY) {
	case experimentalsys.O_RDWR:
		o = os.O_RDWR
	case experimentalsys.O_WRONLY:
		o = os.O_WRONLY
	default:
		o = os.O_RDONLY
	}
	for _, m := range []struct {
		sys experimentalsys.Oflag
		os  int
	}{
		{experimentalsys.O_APPEND, os.O_APPEND},
		{experimentalsys.O_CREAT, os.O_CREATE},
		{experimentalsys.O_EXCL, os.O_EXCL},
		{experimentalsys.O_SYNC | experimentalsys.O_DSYNC | experimentalsys.O_RSYNC, os.O_SYNC},
		{experimentalsys.O_TRUNC, os.O_TRUNC},
	} {
		if flag&m.sys != 0 {
			o |= m.os
		}
	}
	return o
}

// Lstat implements sys.FS.
func (f *mountFS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) {
	r, _ := f.current(false)
	return statOf(r.Lstat(rel(p)))
}

// Stat implements sys.FS.
func (f *mountFS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	r, _ := f.current(false)
	return statOf(r.Stat(rel(p)))
}

// statOf is what Stat and Lstat return for a stat's result.
func statOf(fi fs.FileInfo, err error) (sys.Stat_t, experimentalsys.Errno) {
	if err != nil {
		return sys.Stat_t{}, errnoOf(err)
	}
	return sys.NewStat_t(fi), 0
}

// Mkdir implements sys.FS.
func (f *mountFS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	if f.mount.ReadOnly {
		return experimentalsys.EROFS
	}
	r, _ := f.current(false)
	errno := errnoOf(r.Mkdir(rel(p), perm&fs.ModePerm))
	if errno == experimentalsys.ENOTDIR {
		errno = experimentalsys.ENOENT // as wazero's DirFS
	}
	return errno
}

// Chmod implements sys.FS.
func (f *mountFS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	if f.mount.ReadOnly {
		return experimentalsys.EROFS
	}
	r, _ := f.current(false)
	return errnoOf(r.Chmod(rel(p), perm&fs.ModePerm))
}

// Rename implements sys.FS. Both names resolve beneath the mount: a
// rename can neither take a file out nor bring one in.
func (f *mountFS) Rename(from, to string) experimentalsys.Errno {
	if f.mount.ReadOnly {
		return experimentalsys.EROFS
	}
	r, _ := f.current(false)
	from, to = rel(from), rel(to)
	// POSIX rename semantics wazero's DirFS keeps: a directory replaces
	// only a directory, a file only a file.
	if src, err := r.Lstat(from); err != nil {
		return errnoOf(err)
	} else if errno := movesLinkOut(r, src, from, to); errno != 0 {
		return errno
	} else if dst, err := r.Lstat(to); err == nil {
		switch {
		case src.IsDir() && !dst.IsDir():
			return experimentalsys.ENOTDIR
		case !src.IsDir() && dst.IsDir():
			return experimentalsys.EISDIR
		}
	}
	return errnoOf(r.Rename(from, to))
}

// Rmdir implements sys.FS.
func (f *mountFS) Rmdir(p string) experimentalsys.Errno {
	return f.remove(p, true)
}

// Unlink implements sys.FS.
func (f *mountFS) Unlink(p string) experimentalsys.Errno {
	return f.remove(p, false)
}

// remove removes p beneath the mount when it is a directory (dir) or
// not one (!dir), and answers ENOTDIR or EISDIR otherwise.
func (f *mountFS) remove(p string, dir bool) experimentalsys.Errno {
	if f.mount.ReadOnly {
		return experimentalsys.EROFS
	}
	r, _ := f.current(false)
	name := rel(p)
	fi, err := r.Lstat(name)
	if err != nil {
		return errnoOf(err)
	}
	switch {
	case dir && !fi.IsDir():
		return experimentalsys.ENOTDIR
	case !dir && fi.IsDir():
		return experimentalsys.EISDIR
	}
	return errnoOf(r.Remove(name))
}

// Link implements sys.FS. Both names resolve beneath the mount, and a
// final symlink is linked itself, not followed.
func (f *mountFS) Link(oldName, newName string) experimentalsys.Errno {
	if f.mount.ReadOnly {
		return experimentalsys.EROFS
	}
	r, _ := f.current(false)
	oldName, newName = rel(oldName), rel(newName)
	if src, err := r.Lstat(oldName); err == nil {
		if errno := movesLinkOut(r, src, oldName, newName); errno != 0 {
			return errno
		}
	}
	return errnoOf(r.Link(oldName, newName))
}

// movesLinkOut refuses to rename or hard-link a symlink whose target the
// guest could not have made (absolute, or with ".."; the operator's) into
// another directory: "../x" means somewhere else one level up, and moved
// from a subdirectory to the top of the mount it would lead out.
func movesLinkOut(r *os.Root, src fs.FileInfo, from, to string) experimentalsys.Errno {
	if src.Mode()&fs.ModeSymlink == 0 || path.Dir(path.Clean(from)) == path.Dir(path.Clean(to)) {
		return 0
	}
	target, err := r.Readlink(from)
	if err != nil {
		return errnoOf(err)
	}
	if !symlinkTargetStaysBelow(target) {
		return errMountEscape
	}
	return 0
}

// Symlink implements sys.FS. os.Root would store any target; a target
// that is absolute or climbs with ".." is refused, so the link cannot
// lead a host process that follows it later out of the mount.
func (f *mountFS) Symlink(target, link string) experimentalsys.Errno {
	if f.mount.ReadOnly {
		return experimentalsys.EROFS
	}
	if !symlinkTargetStaysBelow(target) {
		return errMountEscape
	}
	r, _ := f.current(false)
	return errnoOf(r.Symlink(target, rel(link)))
}

// symlinkTargetStaysBelow reports whether a symlink target names only its
// own directory or something below it: relative, with no ".." component
// anywhere. A lexical check of the cleaned target would not do: "a/.."
// cleans to "." but, once a guest makes a a symlink to ".", resolves to
// the parent of the link's directory, outside the mount at its top.
func symlinkTargetStaysBelow(target string) bool {
	if target == "" || path.IsAbs(target) || strings.ContainsRune(target, '\\') || strings.ContainsRune(target, 0) {
		return false
	}
	for c := range strings.SplitSeq(target, "/") {
		if c == ".." {
			return false
		}
	}
	return true
}

// Readlink implements sys.FS.
func (f *mountFS) Readlink(p string) (string, experimentalsys.Errno) {
	r, _ := f.current(false)
	dst, err := r.Readlink(rel(p))
	if err != nil {
		return "", errnoOf(err)
	}
	return dst, 0
}

// Utimens implements sys.FS; it follows a final symlink that stays inside.
func (f *mountFS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	if f.mount.ReadOnly {
		return experimentalsys.EROFS
	}
	if atim == experimentalsys.UTIME_OMIT && mtim == experimentalsys.UTIME_OMIT {
		return 0
	}
	r, _ := f.current(false)
	// A zero time.Time leaves that time as it is.
	return errnoOf(r.Chtimes(rel(p), nanosToTime(atim), nanosToTime(mtim)))
}

func nanosToTime(n int64) time.Time {
	if n == experimentalsys.UTIME_OMIT {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// mountFile is an *os.File opened through a mountFS, as a sys.File. The
// reading, seeking, listing and writing are wazero's own (sysfs.AdaptFS's
// file over the *os.File); mountFile adds what that adapter leaves out
// (append mode, truncate, sync, times) and refuses writes on a read-only
// mount.
type mountFile struct {
	experimentalsys.File // wazero's adapter over f
	fs                   *mountFS
	name                 string // beneath the root, for re-opening
	flag                 experimentalsys.Oflag
	perm                 fs.FileMode
	f                    *os.File // the file under File, kept current across its re-opens
}

var _ experimentalsys.File = (*mountFile)(nil)

// newMountFile wraps osf, just opened as name with flag.
func (f *mountFS) newMountFile(osf *os.File, name string, flag experimentalsys.Oflag, perm fs.FileMode) (*mountFile, experimentalsys.Errno) {
	m := &mountFile{fs: f, name: name, flag: flag, perm: perm}
	if errno := m.adapt(osf, flag); errno != 0 {
		return nil, errno
	}
	return m, 0
}

// adapt makes osf, opened as m.name with flag, the file under m, closing
// osf if wazero's adapter refuses it.
func (m *mountFile) adapt(osf *os.File, flag experimentalsys.Oflag) experimentalsys.Errno {
	adapted, errno := (&sysfs.AdaptFS{FS: &reopenFS{file: m, first: osf}}).OpenFile(m.name, flag, m.perm)
	if errno != 0 {
		_ = osf.Close()
		return errno
	}
	m.File, m.f, m.flag = adapted, osf, flag
	return 0
}

// reopenFS is the fs.FS wazero's adapter opens one file through: first
// the file already opened, then (to rewind a directory listing) the same
// name again beneath the mount's root, read-only.
type reopenFS struct {
	file  *mountFile
	first *os.File
}

// Open implements fs.FS.
func (o *reopenFS) Open(name string) (fs.File, error) {
	if f := o.first; f != nil {
		o.first = nil
		return f, nil
	}
	r, _ := o.file.fs.current(false)
	f, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	o.file.f = f // the adapter closes the old one
	return f, nil
}

// IsAppend implements sys.File.
func (m *mountFile) IsAppend() bool { return m.flag&experimentalsys.O_APPEND != 0 }

// SetAppend implements sys.File. os.File fixes append mode at open, so the
// file is re-opened beneath the root with the new mode, as wazero's own
// file does, keeping its offset.
func (m *mountFile) SetAppend(enable bool) experimentalsys.Errno {
	if enable == m.IsAppend() {
		return 0
	}
	if isDir, errno := m.IsDir(); errno != 0 {
		return errno
	} else if isDir {
		return experimentalsys.EISDIR
	}
	if enable && m.fs.mount.ReadOnly {
		return experimentalsys.EROFS
	}
	flag := m.flag &^ (experimentalsys.O_CREAT | experimentalsys.O_TRUNC | experimentalsys.O_EXCL)
	if enable {
		flag |= experimentalsys.O_APPEND
	} else {
		flag &^= experimentalsys.O_APPEND
	}
	off, err := m.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return errnoOf(err)
	}
	r, _ := m.fs.current(false)
	nf, err := r.OpenFile(m.name, osOpenFlag(flag), m.perm)
	if err != nil {
		return errnoOf(err)
	}
	a, err1 := m.f.Stat()
	b, err2 := nf.Stat()
	if err := errors.Join(err1, err2); err != nil || !os.SameFile(a, b) {
		_ = nf.Close()
		if err != nil {
			return errnoOf(err)
		}
		return experimentalsys.ENOENT // renamed or replaced since it was opened
	}
	if _, err := nf.Seek(off, io.SeekStart); err != nil {
		_ = nf.Close()
		return errnoOf(err)
	}
	old := m.File
	if errno := m.adapt(nf, flag); errno != 0 {
		return errno
	}
	_ = old.Close()
	return 0
}

// Write implements sys.File.
func (m *mountFile) Write(buf []byte) (int, experimentalsys.Errno) {
	if m.fs.mount.ReadOnly {
		return 0, m.readOnly()
	}
	return m.File.Write(buf)
}

// Pwrite implements sys.File.
func (m *mountFile) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if m.fs.mount.ReadOnly {
		return 0, m.readOnly()
	}
	return m.File.Pwrite(buf, off)
}

// readOnly is the errno of a write on a read-only mount's file: what a
// file opened read-only answers.
func (m *mountFile) readOnly() experimentalsys.Errno {
	if isDir, errno := m.IsDir(); errno != 0 {
		return errno
	} else if isDir {
		return experimentalsys.EISDIR
	}
	return experimentalsys.EBADF
}

// Truncate implements sys.File.
func (m *mountFile) Truncate(size int64) experimentalsys.Errno {
	if m.fs.mount.ReadOnly {
		return m.readOnly()
	}
	if isDir, errno := m.IsDir(); errno != 0 {
		return errno
	} else if isDir {
		return experimentalsys.EISDIR
	}
	if size < 0 {
		return experimentalsys.EINVAL
	}
	return errnoOf(m.f.Truncate(size))
}

// Sync implements sys.File.
func (m *mountFile) Sync() experimentalsys.Errno {
	if _, errno := m.Stat(); errno != 0 { // EBADF once closed
		return errno
	}
	return errnoOf(m.f.Sync())
}

// Datasync implements sys.File, as a full Sync.
func (m *mountFile) Datasync() experimentalsys.Errno { return m.Sync() }

// Utimens implements sys.File. os.File cannot set times through the
// descriptor, so this sets them by the name it was opened with, beneath
// the root (a file opened without following a final symlink is no
// symlink, so the name still leads to it unless it was renamed).
func (m *mountFile) Utimens(atim, mtim int64) experimentalsys.Errno {
	if _, errno := m.Stat(); errno != 0 {
		return errno
	}
	return m.fs.Utimens(m.name, atim, mtim)
}

// checkMount refuses a mount whose host directory is, contains or lies
// inside one of HostOptions.ProtectedPaths (the server's own files), or,
// unless it is read-only, one of HostOptions.ConfigPaths.
// Both sides are compared with their symlinks resolved, and by identity
// along each one's ancestors, so neither a symlink nor a second path to
// the same directory (a bind mount) gets around it. A path that does not
// exist yet is compared by name: a mount must not cover where the server
// will create one of its files either.
func (h *Host) checkMount(m Mount) error {
	if len(h.opts.ProtectedPaths) == 0 && (m.ReadOnly || len(h.opts.ConfigPaths) == 0) {
		return nil
	}
	dir, err := resolvePath(m.HostPath)
	if err != nil {
		return fmt.Errorf("mount %s: host_path %q: %w", m.GuestPath, m.HostPath, err)
	}
	dirInfo, _ := os.Stat(dir) // nil if absent: compared by name only
	if err := checkCovers(m, dir, dirInfo, h.opts.ProtectedPaths, "the server's own file"); err != nil {
		return err
	}
	if !m.ReadOnly {
		// The operator's configuration may be read, never written.
		return checkCovers(m, dir, dirInfo, h.opts.ConfigPaths, "the operator's configuration")
	}
	return nil
}

// checkCovers refuses the mount m of dir (resolved; dirInfo nil if absent)
// when it is, contains or lies inside one of paths, calling that one what.
func checkCovers(m Mount, dir string, dirInfo os.FileInfo, paths []string, what string) error {
	for _, p := range paths {
		rp, err := resolvePath(p)
		if err != nil {
			// Fail closed: a protected path that cannot be resolved
			// cannot be shown to be outside the mount.
			return fmt.Errorf("mount %s: %w: check protected path %q: %v", m.GuestPath, ErrMountRefused, p, err)
		}
		pInfo, _ := os.Stat(rp)
		how := ""
		switch {
		case rp == dir:
			how = "is"
		case within(rp, dir):
			how = "contains"
		case within(dir, rp):
			how = "lies inside"
		case pInfo != nil && ancestorIs(dir, pInfo):
			how = "lies inside"
		case dirInfo != nil && ancestorIs(rp, dirInfo):
			how = "contains"
		}
		if how != "" {
			return fmt.Errorf("mount %s: %w: host_path %q %s %s %q", m.GuestPath, ErrMountRefused, m.HostPath, how, what, p)
		}
	}
	return nil
}

// checkMounts checks every mount of m.
func (h *Host) checkMounts(m *Manifest) error {
	for _, mt := range m.Mounts {
		if err := h.checkMount(mt); err != nil {
			return err
		}
	}
	return nil
}

// within reports whether p lies strictly below dir (both clean, absolute).
func within(p, dir string) bool {
	if dir == string(filepath.Separator) {
		return p != dir
	}
	return strings.HasPrefix(p, dir+string(filepath.Separator))
}

// ancestorIs reports whether p or one of its ancestors is the file target.
func ancestorIs(p string, target os.FileInfo) bool {
	for {
		if fi, err := os.Stat(p); err == nil && os.SameFile(fi, target) {
			return true
		}
		parent := filepath.Dir(p)
		if parent == p {
			return false
		}
		p = parent
	}
}

// resolvePath returns p absolute, clean and with every symlink resolved;
// for a path that does not exist (yet), its deepest existing ancestor is
// resolved and the rest appended.
func resolvePath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	var rest []string
	for cur := abs; ; {
		real, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return "", err
		}
		rest = append([]string{filepath.Base(cur)}, rest...)
		cur = parent
	}
}
