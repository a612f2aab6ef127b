package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
)

// The default database lives in the per-user data folder, not the working
// folder: MCP clients start servers from whatever folder they are in, and
// a database that follows the working folder splits one user's runs, tools
// and secrets over many files. See RATIONALE.md "Why is the
// default database in the per-user data folder?".

const (
	dataDirName   = "nano-vm-mcp"
	defaultDBName = "nano_vm_mcp.db"
	defaultDBHelp = "$XDG_DATA_HOME/nano-vm-mcp/" + defaultDBName + ", else ~/.local/share/nano-vm-mcp/" + defaultDBName
)

// defaultDataDir is the per-user data folder: $XDG_DATA_HOME/nano-vm-mcp
// when XDG_DATA_HOME is an absolute path (the XDG rule: a relative one is
// ignored), else ~/.local/share/nano-vm-mcp.
func defaultDataDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, dataDirName), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", fmt.Errorf("default database: no home folder (%v): give the database with --db FILE or NANO_VM_MCP_DB", err)
	}
	return filepath.Join(home, ".local", "share", dataDirName), nil
}

func defaultDBPath() (string, error) {
	dir, err := defaultDataDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, defaultDBName), nil
}

// expandHome expands a leading "~/" (a --db from a JSON client
// configuration reaches us without a shell to expand it).
func expandHome(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return p
	}
	return filepath.Join(home, p[1:])
}

// created is something the first run made, for the notice on stderr.
type created struct{ what, path, note string }

// prepareDB creates the database's folder (mode 0700) when it is missing.
// It runs before the shared-serving election too, whose lock lives in
// that folder.
func (c *common) prepareDB() error {
	if c.prepared {
		return nil
	}
	c.prepared = true
	if postgres.IsDSN(c.db) {
		return nil // a database server: no folder here
	}
	dir := filepath.Dir(c.db)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create database folder %s: %w (create it yourself, or give another database with --db FILE or NANO_VM_MCP_DB)", dir, err)
		}
		c.firstRun = append(c.firstRun, created{"folder", dir, "mode 0700"})
	}
	return nil
}

// noteMissing notes which of the database, the vault key and the
// compilation cache do not exist yet, just before an open, so that
// reportCreated can say what the open created.
func (c *common) noteMissing() {
	if postgres.IsDSN(c.db) {
		return
	}
	missing := func(p string) bool {
		_, err := os.Stat(p)
		return errors.Is(err, fs.ErrNotExist)
	}
	if missing(c.db) {
		c.firstRun = append(c.firstRun, created{"database", c.db, ""})
	}
	if missing(c.db + store.JournalSuffix) {
		c.firstRun = append(c.firstRun, created{"journal", c.db + store.JournalSuffix, "the database's write-ahead journal: copy, move or remove it with the database, never alone"})
	}
	if env("VAULT_KEY") == "" && missing(c.db+".vault-key") {
		c.firstRun = append(c.firstRun, created{"vault key", c.db + ".vault-key", "mode 0600; it decrypts the stored secrets: back it up with the database, or set NANO_VM_MCP_VAULT_KEY"})
	}
	cache := c.cacheDir
	if cache == "" {
		cache = c.db + ".wasm-cache"
	}
	if cache != "-" && missing(cache) {
		c.firstRun = append(c.firstRun, created{"compile cache", cache, "compiled tool code; safe to delete"})
	}
}

// reportCreated says on stderr what the open just created, one line
// each, unless --log-level is error.
func (c *common) reportCreated() {
	list := c.firstRun
	c.firstRun = nil
	if c.level > slog.LevelWarn {
		return
	}
	for _, cr := range list {
		if _, err := os.Stat(cr.path); err != nil {
			continue // not created after all (e.g. the cache turned off)
		}
		p := cr.path
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		line := fmt.Sprintf("nano-vm-mcp: created %s %s", cr.what, p)
		if cr.note != "" {
			line += " (" + cr.note + ")"
		}
		fmt.Fprintln(c.cio.stderr, line)
	}
}
