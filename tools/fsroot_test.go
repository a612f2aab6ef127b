package tools

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// snapshot records every file under dir: its kind, mode, size, mtime and
// content (or a symlink's target), to show nothing changed there.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			dst, err := os.Readlink(p)
			if err != nil {
				return err
			}
			v += " -> " + dst
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// confinementFixture lays out, under one temporary directory:
//
//	outside/secret.txt, ...     host files no guest may touch
//	outside/sub/                a host directory no guest may touch
//	mnt/rw/                     mounted writable at /rw
//	mnt/rw/prerel  -> ../../outside      pre-existing relative symlink out
//	mnt/rw/preabs  -> <base>/outside     pre-existing absolute symlink out
//	mnt/rw/deep/up -> ../ro              leads out only if moved up a level
//	mnt/ro/                     mounted read-only at /ro
//	mnt/ro/inside.txt, mnt/ro/keep/, mnt/ro/pre -> <base>/outside
//
// and registers fs_escape with both mounts.
type confinementFixture struct {
	base, outside, rw, ro string
	r                     *Registry
}

func newConfinementFixture(t *testing.T) *confinementFixture {
	t.Helper()
	base := t.TempDir()
	f := &confinementFixture{base: base, outside: filepath.Join(base, "outside"), rw: filepath.Join(base, "mnt", "rw"), ro: filepath.Join(base, "mnt", "ro")}
	for _, d := range []string{filepath.Join(f.outside, "sub"), filepath.Join(f.rw, "deep"), filepath.Join(f.ro, "keep")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{filepath.Join(f.ro, "inside.txt"): "ok"}
	// One outside file per kind of attack, so that each case stands alone.
	for _, n := range []string{"secret", "unlinkme", "truncme", "timeme", "linkme", "takeme"} {
		files[filepath.Join(f.outside, n+".txt")] = "top secret"
	}
	for p, data := range files {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		filepath.Join(f.rw, "prerel"): "../../outside",
		filepath.Join(f.rw, "preabs"): f.outside,
		filepath.Join(f.ro, "pre"):    f.outside,
		// Inside as it stands (rw/deep/../ro is rw/ro); moved up a level
		// it would name mnt/ro, outside the writable mount.
		filepath.Join(f.rw, "deep", "up"): "../ro",
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	f.r = NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{})
	register(t, f.r, "fs_escape", func(m *Manifest) {
		m.Mounts = []Mount{{HostPath: f.rw, GuestPath: "/rw"}, {HostPath: f.ro, GuestPath: "/ro", ReadOnly: true}}
	})
	return f
}

// call runs one fs_escape operation and returns its output or error text.
func (f *confinementFixture) call(t *testing.T, args map[string]any) string {
	t.Helper()
	res, err := f.r.Call(context.Background(), "fs_escape", CallRequest{Args: args})
	if err != nil {
		if !errors.Is(err, ErrToolFailed) {
			t.Fatalf("%v: want a tool-reported error or a result, got %v", args, err)
		}
		return "error: " + strings.TrimPrefix(err.Error(), `tool "fs_escape": `)
	}
	return fmt.Sprint(res.Output)
}

// Ensure a hostile guest holding wasi:fs with a writable and a read-only
// mount cannot reach a host file outside them by any route: "..", an
// absolute path, a symlink that was there before or one it makes (whose
// creation is itself refused, so no host process can be led out by it
// later), a hard link, a rename out or in; that a read-only mount takes
// no write of any kind; and that nothing outside the mounts changed.
func TestMountConfinement(t *testing.T) {
	f := newConfinementFixture(t)
	outsideBefore := snapshot(t, f.outside)
	roBefore := snapshot(t, f.ro)
	abs := filepath.Join(f.outside, "secret.txt")

	tests := []struct {
		name string
		args map[string]any
		want string // the error, exactly; every case here must fail
	}{
		{"dotdot traversal", map[string]any{"path": "/rw/../../outside/secret.txt"}, "error: open /rw/../../outside/secret.txt: Operation not permitted"},
		{"absolute host path", map[string]any{"path": abs}, "error: open " + abs + ": Capabilities insufficient"},
		{"pre-existing absolute symlink, read", map[string]any{"path": "/ro/pre/secret.txt"}, "error: open /ro/pre/secret.txt: Operation not permitted"},
		{"pre-existing absolute symlink, writable mount", map[string]any{"path": "/rw/preabs/secret.txt"}, "error: open /rw/preabs/secret.txt: Operation not permitted"},
		{"pre-existing relative symlink, read", map[string]any{"path": "/rw/prerel/secret.txt"}, "error: open /rw/prerel/secret.txt: Operation not permitted"},
		{"pre-existing relative symlink, create", map[string]any{"op": "write", "path": "/rw/prerel/created.txt", "data": "x"}, "error: write /rw/prerel/created.txt: Operation not permitted"},
		{"pre-existing relative symlink, mkdir", map[string]any{"op": "mkdir", "path": "/rw/prerel/newdir"}, "error: mkdir /rw/prerel/newdir: Operation not permitted"},
		{"pre-existing symlink, list", map[string]any{"op": "list", "path": "/rw/prerel"}, "error: list /rw/prerel: Operation not permitted"},
		{"pre-existing symlink, stat", map[string]any{"op": "stat", "path": "/rw/prerel/secret.txt"}, "error: stat /rw/prerel/secret.txt: Operation not permitted"},
		{"pre-existing symlink, unlink", map[string]any{"op": "unlink", "path": "/rw/prerel/unlinkme.txt"}, "error: unlink /rw/prerel/unlinkme.txt: Operation not permitted"},
		{"pre-existing symlink, truncate", map[string]any{"op": "truncate", "path": "/rw/prerel/truncme.txt"}, "error: truncate /rw/prerel/truncme.txt: Operation not permitted"},
		{"pre-existing symlink, utimes", map[string]any{"op": "utimes", "path": "/rw/prerel/timeme.txt"}, "error: utimes /rw/prerel/timeme.txt: Operation not permitted"},
		{"guest symlink climbing out", map[string]any{"op": "symlink", "target": "../../outside", "path": "/rw/esc"}, "error: symlink /rw/esc: Operation not permitted"},
		{"guest symlink, then read through it", map[string]any{"path": "/rw/esc/secret.txt"}, "error: open /rw/esc/secret.txt: No such file or directory"},
		{"guest symlink, then create through it", map[string]any{"op": "write", "path": "/rw/esc/created.txt", "data": "x"}, "error: write /rw/esc/created.txt: No such file or directory"},
		{"guest symlink to an absolute target", map[string]any{"op": "symlink", "target": f.outside, "path": "/rw/escabs"}, "error: symlink /rw/escabs: Operation not permitted"},
		{"guest symlink whose .. a symlink would turn outward", map[string]any{"op": "symlink", "target": "here/..", "path": "/rw/esc2"}, "error: symlink /rw/esc2: Operation not permitted"},
		{"hard link to an outside file", map[string]any{"op": "link", "target": "/rw/prerel/linkme.txt", "path": "/rw/hard"}, "error: link /rw/hard: Operation not permitted"},
		{"rename out of the mount", map[string]any{"op": "rename", "target": "/rw/mine.txt", "path": "/rw/prerel/stolen.txt"}, "error: rename /rw/prerel/stolen.txt: Operation not permitted"},
		{"rename an outside file in", map[string]any{"op": "rename", "target": "/rw/prerel/takeme.txt", "path": "/rw/got.txt"}, "error: rename /rw/got.txt: Operation not permitted"},
		{"move the operator's symlink up a level", map[string]any{"op": "rename", "target": "/rw/deep/up", "path": "/rw/up"}, "error: rename /rw/up: Operation not permitted"},
		{"hard-link the operator's symlink up a level", map[string]any{"op": "link", "target": "/rw/deep/up", "path": "/rw/up"}, "error: link /rw/up: Operation not permitted"},
		{"read-only: create", map[string]any{"op": "write", "path": "/ro/new.txt", "data": "x"}, "error: write /ro/new.txt: Read-only file system"},
		{"read-only: overwrite", map[string]any{"op": "write", "path": "/ro/inside.txt", "data": "x"}, "error: write /ro/inside.txt: Read-only file system"},
		{"read-only: append", map[string]any{"op": "append", "path": "/ro/inside.txt", "data": "x"}, "error: append /ro/inside.txt: Read-only file system"},
		{"read-only: create with read access only", map[string]any{"op": "open", "path": "/ro/sneaky.txt", "flags": "rdonly,creat"}, "error: open /ro/sneaky.txt: Read-only file system"},
		{"read-only: truncate with read access only", map[string]any{"op": "open", "path": "/ro/inside.txt", "flags": "rdonly,trunc"}, "error: open /ro/inside.txt: Read-only file system"},
		{"read-only: truncate", map[string]any{"op": "truncate", "path": "/ro/inside.txt"}, "error: truncate /ro/inside.txt: Read-only file system"},
		{"read-only: mkdir", map[string]any{"op": "mkdir", "path": "/ro/newdir"}, "error: mkdir /ro/newdir: Read-only file system"},
		{"read-only: rmdir", map[string]any{"op": "rmdir", "path": "/ro/keep"}, "error: rmdir /ro/keep: Read-only file system"},
		{"read-only: unlink", map[string]any{"op": "unlink", "path": "/ro/inside.txt"}, "error: unlink /ro/inside.txt: Read-only file system"},
		{"read-only: rename", map[string]any{"op": "rename", "target": "/ro/inside.txt", "path": "/ro/moved.txt"}, "error: rename /ro/moved.txt: Read-only file system"},
		{"read-only: hard link", map[string]any{"op": "link", "target": "/ro/inside.txt", "path": "/ro/hard"}, "error: link /ro/hard: Read-only file system"},
		{"read-only: symlink", map[string]any{"op": "symlink", "target": "inside.txt", "path": "/ro/alias"}, "error: symlink /ro/alias: Read-only file system"},
		{"read-only: utimes", map[string]any{"op": "utimes", "path": "/ro/inside.txt"}, "error: utimes /ro/inside.txt: Read-only file system"},
		{"read-only: utimes through a descriptor", map[string]any{"op": "futimes", "path": "/ro/inside.txt"}, "error: futimes /ro/inside.txt: Read-only file system"},
		{"read-only: pwrite", map[string]any{"op": "pwrite", "path": "/ro/inside.txt", "data": "x"}, "error: open /ro/inside.txt: Read-only file system"},
	}
	// Files the escapes above aim at exist, so a failure is the sandbox's.
	if got := f.call(t, map[string]any{"op": "write", "path": "/rw/mine.txt", "data": "mine"}); got != "map[ok:true wrote:4]" {
		t.Fatalf("honest write: %s", got)
	}
	if got := f.call(t, map[string]any{"op": "symlink", "target": ".", "path": "/rw/here"}); got != "map[ok:true]" {
		t.Fatalf("honest symlink to its own directory: %s", got)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outside, ro := snapshot(t, f.outside), snapshot(t, f.ro)
			got := f.call(t, tt.args)
			if after := snapshot(t, f.outside); !maps.Equal(after, outside) {
				t.Errorf("outside the mounts changed:\nbefore %v\nafter  %v", outside, after)
			}
			if after := snapshot(t, f.ro); !maps.Equal(after, ro) {
				t.Errorf("the read-only mount changed:\nbefore %v\nafter  %v", ro, after)
			}
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	if after := snapshot(t, f.outside); !maps.Equal(after, outsideBefore) {
		t.Fatalf("outside the mounts changed:\nbefore %v\nafter  %v", outsideBefore, after)
	}
	if after := snapshot(t, f.ro); !maps.Equal(after, roBefore) {
		t.Fatalf("the read-only mount changed:\nbefore %v\nafter  %v", roBefore, after)
	}
	// No link in the writable mount leads out: the pre-existing ones are
	// the operator's; every other symlink names its own directory or below.
	entries, err := os.ReadDir(f.rw)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"deep", "here", "mine.txt", "preabs", "prerel"}; !slices.Equal(names, want) {
		t.Fatalf("writable mount holds %v, want %v", names, want)
	}
	// And nothing appeared beside the mounts.
	if entries, err := os.ReadDir(filepath.Join(f.base, "mnt")); err != nil || len(entries) != 2 {
		t.Fatalf("beside the mounts: %v %v", entries, err)
	}
}

// Ensure an honest tool keeps every ordinary file operation on a writable
// mount (the confinement must not cost it anything), and reads on a
// read-only one, including through symlinks that stay inside.
func TestMountHonestUse(t *testing.T) {
	f := newConfinementFixture(t)
	keep, err := os.Stat(filepath.Join(f.ro, "keep"))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		args map[string]any
		want string
	}{
		{"create", map[string]any{"op": "write", "path": "/rw/a.txt", "data": "hello"}, "map[ok:true wrote:5]"},
		{"read back", map[string]any{"path": "/rw/a.txt"}, "map[read:5 text:hello]"},
		{"append", map[string]any{"op": "append", "path": "/rw/a.txt", "data": "!!"}, "map[ok:true wrote:2]"},
		{"set append on an open file", map[string]any{"op": "setappend", "path": "/rw/a.txt", "data": "?"}, "map[ok:true]"},
		{"read appended", map[string]any{"path": "/rw/a.txt"}, "map[read:8 text:hello!!?]"},
		{"pwrite and pread", map[string]any{"op": "pwrite", "path": "/rw/a.txt", "data": "LL"}, "map[ok:true text:heLLo!!?]"},
		{"seek and read", map[string]any{"op": "seek", "path": "/rw/a.txt"}, "map[ok:true text:eLLo!!?]"},
		{"stat", map[string]any{"op": "stat", "path": "/rw/a.txt"}, "map[dir:false ok:true size:8]"},
		{"mkdir", map[string]any{"op": "mkdir", "path": "/rw/d"}, "map[ok:true]"},
		{"create in subdirectory", map[string]any{"op": "write", "path": "/rw/d/b.txt", "data": "bee"}, "map[ok:true wrote:3]"},
		{"rename within", map[string]any{"op": "rename", "target": "/rw/d/b.txt", "path": "/rw/c.txt"}, "map[ok:true]"},
		{"hard link within", map[string]any{"op": "link", "target": "/rw/c.txt", "path": "/rw/d/c-link"}, "map[ok:true]"},
		{"symlink within", map[string]any{"op": "symlink", "target": "d/c-link", "path": "/rw/alias"}, "map[ok:true]"},
		{"readlink", map[string]any{"op": "readlink", "path": "/rw/alias"}, "map[ok:true text:d/c-link]"},
		{"read through symlink", map[string]any{"path": "/rw/alias"}, "map[read:3 text:bee]"},
		{"list with rewind", map[string]any{"op": "list", "path": "/rw/d"}, "map[again:[c-link] names:[c-link] ok:true]"},
		{"utimes", map[string]any{"op": "utimes", "path": "/rw/c.txt"}, "map[ok:true]"},
		{"utimes through a descriptor", map[string]any{"op": "futimes", "path": "/rw/c.txt"}, "map[ok:true]"},
		{"truncate", map[string]any{"op": "truncate", "path": "/rw/c.txt"}, "map[ok:true]"},
		{"truncated", map[string]any{"op": "stat", "path": "/rw/c.txt"}, "map[dir:false ok:true size:0]"},
		{"unlink", map[string]any{"op": "unlink", "path": "/rw/d/c-link"}, "map[ok:true]"},
		{"unlink a directory", map[string]any{"op": "unlink", "path": "/rw/d"}, "error: unlink /rw/d: Is a directory"},
		{"rmdir", map[string]any{"op": "rmdir", "path": "/rw/d"}, "map[ok:true]"},
		{"rmdir a file", map[string]any{"op": "rmdir", "path": "/rw/c.txt"}, "error: rmdir /rw/c.txt: Not a directory"},
		{"read-only: read", map[string]any{"path": "/ro/inside.txt"}, "map[read:2 text:ok]"},
		{"read-only: list", map[string]any{"op": "list", "path": "/ro/keep"}, "map[again:[] names:[] ok:true]"},
		{"read-only: stat", map[string]any{"op": "stat", "path": "/ro/keep"}, fmt.Sprintf("map[dir:true ok:true size:%d]", keep.Size())},
		{"read-only: seek", map[string]any{"op": "seek", "path": "/ro/inside.txt"}, "map[ok:true text:k]"},
	}
	for _, s := range steps {
		if got := f.call(t, s.args); got != s.want {
			t.Fatalf("%s: got  %s\nwant %s", s.name, got, s.want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(f.rw, "a.txt")); err != nil || string(b) != "heLLo!!?" {
		t.Fatalf("host sees %q, %v", b, err)
	}
}

// Ensure a mount whose host directory is, contains or lies inside one of
// the server's own files is refused at registration, naming the mount and
// the file, through symlinks too, and for files not created yet; and that
// the compilation cache is protected without being listed.
func TestProtectedPathsRefuseMounts(t *testing.T) {
	base := t.TempDir()
	dbDir := filepath.Join(base, "state")
	db := filepath.Join(dbDir, "nano.db")
	cache := filepath.Join(base, "cache")
	future := filepath.Join(base, "later")
	free := filepath.Join(base, "free")
	for _, d := range []string{dbDir, filepath.Join(cache, "sub"), future, free} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dbDir, filepath.Join(base, "alias")); err != nil {
		t.Fatal(err)
	}
	opts := HostOptions{CacheDir: cache, ProtectedPaths: []string{db, db + ".vault-key", filepath.Join(future, "nano.sock")}}
	r := NewRegistry(newHost(t, opts), NewMemoryStore(), RegistryOptions{})
	tests := []struct {
		name, host, want string
	}{
		{"database's directory", dbDir, `mount /data: mount refused: host_path "` + dbDir + `" contains the server's own file "` + db + `"`},
		{"an ancestor of the database", base, `mount /data: mount refused: host_path "` + base + `" contains the server's own file "` + db + `"`},
		{"a symlink to the database's directory", filepath.Join(base, "alias"), `mount /data: mount refused: host_path "` + filepath.Join(base, "alias") + `" contains the server's own file "` + db + `"`},
		{"the compilation cache", cache, `mount /data: mount refused: host_path "` + cache + `" is the server's own file "` + cache + `"`},
		{"inside the compilation cache", filepath.Join(cache, "sub"), `mount /data: mount refused: host_path "` + filepath.Join(cache, "sub") + `" lies inside the server's own file "` + cache + `"`},
		{"where a server file will be created", future, `mount /data: mount refused: host_path "` + future + `" contains the server's own file "` + filepath.Join(future, "nano.sock") + `"`},
		{"a database file itself", db, `mount /data: mount refused: host_path "` + db + `" is the server's own file "` + db + `"`},
		{"unrelated directory", free, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mod := modules(t)["fs_escape"]
			m, err := ParseManifest(mod.Manifest)
			if err != nil {
				t.Fatal(err)
			}
			m.Mounts = []Mount{{HostPath: tt.host, GuestPath: "/data"}}
			_, err = r.Register(context.Background(), m, mod.Wasm)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrMountRefused) || err.Error() != `register tool "fs_escape": `+tt.want {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// Ensure the protected paths hold at resolve too: a tool stored before
// they were set (or by another process) does not resolve, and one whose
// host_path is a symlink re-pointed at the server's files after it was
// resolved does not follow it.
func TestProtectedPathsAtResolveAndReopen(t *testing.T) {
	base := t.TempDir()
	dbDir := filepath.Join(base, "state")
	db := filepath.Join(dbDir, "nano.db")
	data := filepath.Join(base, "data")
	link := filepath.Join(base, "link")
	for _, d := range []string{dbDir, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(db, []byte("db"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(data, link); err != nil {
		t.Fatal(err)
	}
	st := NewMemoryStore()
	unprotected := NewRegistry(newHost(t, HostOptions{}), st, RegistryOptions{})
	register(t, unprotected, "fs_escape", func(m *Manifest) {
		m.Mounts = []Mount{{HostPath: dbDir, GuestPath: "/data"}}
	})
	register(t, unprotected, "fs_escape", func(m *Manifest) {
		m.Name = "via_link"
		m.Mounts = []Mount{{HostPath: link, GuestPath: "/data"}}
	})
	r := NewRegistry(newHost(t, HostOptions{ProtectedPaths: []string{db}}), st, RegistryOptions{})
	_, err := r.Resolve(context.Background(), "fs_escape")
	want := `resolve tool "fs_escape": mount /data: mount refused: host_path "` + dbDir + `" contains the server's own file "` + db + `"`
	if !errors.Is(err, ErrMountRefused) || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}

	call := func(args map[string]any) string {
		res, err := r.Call(context.Background(), "via_link", CallRequest{Args: args})
		if err != nil {
			return err.Error()
		}
		return fmt.Sprint(res.Output)
	}
	if got := call(map[string]any{"op": "write", "path": "/data/a.txt", "data": "x"}); got != "map[ok:true wrote:1]" {
		t.Fatalf("write through the link: %s", got)
	}
	// The operator's data folder is replaced: the mount follows it.
	if err := os.Rename(data, data+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := call(map[string]any{"op": "write", "path": "/data/b.txt", "data": "y"}); got != "map[ok:true wrote:1]" {
		t.Fatalf("write after the folder was replaced: %s", got)
	}
	if _, err := os.Stat(filepath.Join(data, "b.txt")); err != nil {
		t.Fatalf("the new folder did not get the write: %v", err)
	}
	// Someone re-points the link at the database's directory.
	before := snapshot(t, dbDir)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dbDir, link); err != nil {
		t.Fatal(err)
	}
	for _, args := range []map[string]any{
		{"path": "/data/nano.db"},
		{"op": "write", "path": "/data/planted", "data": "x"},
		{"op": "unlink", "path": "/data/nano.db"},
	} {
		// The mount is gone for the guest (wasi-libc finds no preopen).
		got := call(args)
		if !strings.Contains(got, "Capabilities insufficient") {
			t.Fatalf("%v through the re-pointed link: %s", args, got)
		}
	}
	if after := snapshot(t, dbDir); !maps.Equal(after, before) {
		t.Fatalf("the database's directory changed:\nbefore %v\nafter  %v", before, after)
	}
}

// FuzzGuestSymlinkStaysInside checks the rule for guest-made symlinks
// against the host's own resolution: whatever two targets a guest picks,
// every link the mount lets it make, followed the way a host process
// would (filepath.EvalSymlinks, chaining through each other and through a
// "here -> ." link), resolves inside the mount or not at all. Without the
// rule, the seed ("here/..") resolves to the mount's parent.
func FuzzGuestSymlinkStaysInside(f *testing.F) {
	for _, s := range [][2]string{{"..", "x"}, {"../x", "l1/.."}, {"a/..", "here/.."}, {".", "l1"}, {"here/..", "sub/l1/.."}, {"/etc", "//etc"}, {"x/../..", "l2/l2"}, {"sub", "l1/../.."}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, t1, t2 string) {
		base := t.TempDir()
		mnt := filepath.Join(base, "mnt")
		if err := os.MkdirAll(filepath.Join(mnt, "sub", "deeper"), 0o755); err != nil {
			t.Fatal(err)
		}
		h := &Host{opts: HostOptions{}}
		fsys, err := h.openMount(Mount{HostPath: mnt, GuestPath: "/m"})
		if err != nil {
			t.Fatal(err)
		}
		if errno := fsys.Symlink(".", "here"); errno != 0 {
			t.Fatalf("symlink to its own directory: %v", errno)
		}
		made := []string{"here"}
		for _, l := range []struct{ target, link string }{{t1, "sub/l1"}, {t2, "l2"}, {t1, "sub/deeper/l3"}} {
			if fsys.Symlink(l.target, l.link) == 0 {
				made = append(made, l.link)
			}
		}
		realMnt, err := filepath.EvalSymlinks(mnt)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range made {
			p, err := filepath.EvalSymlinks(filepath.Join(mnt, l))
			if err != nil {
				continue // dangling or a loop: leads nowhere
			}
			if p != realMnt && !within(p, realMnt) {
				t.Fatalf("targets %q, %q: %s resolves to %s, outside %s", t1, t2, l, p, realMnt)
			}
		}
	})
}

// Ensure a mount whose folder was removed after the tool was resolved is
// absent to the guest (no host panic, no write into the deleted folder),
// and back once the folder is.
func TestMountDirectoryRemoved(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	r := newRegistry(t)
	register(t, r, "fs_escape", func(m *Manifest) { m.Mounts = []Mount{{HostPath: data, GuestPath: "/data"}} })
	write := func() (string, error) {
		res, err := r.Call(context.Background(), "fs_escape", CallRequest{Args: map[string]any{"op": "write", "path": "/data/a.txt", "data": "x"}})
		return fmt.Sprint(res.Output), err
	}
	if out, err := write(); err != nil {
		t.Fatalf("write: %s %v", out, err)
	}
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	if _, err := write(); !errors.Is(err, ErrToolFailed) || !strings.Contains(err.Error(), "write /data/a.txt: Capabilities insufficient") {
		t.Fatalf("write with the folder gone: %v", err)
	}
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := write(); err != nil {
		t.Fatalf("write once the folder is back: %s %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(data, "a.txt")); err != nil {
		t.Fatal(err)
	}
}
