package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"

	"github.com/nanovm/nano-vm-mcp/store/postgres"
	"github.com/nanovm/nano-vm-mcp/tools"
)

// UploadDir is the folder where the MCP server stages chunked module
// uploads (upload_module): "<db>.uploads" beside a bbolt file; for a
// PostgreSQL address, a folder of the user's cache named by a hash of the
// address (never the address itself, which may hold a password). No tool
// may mount it (it is among the protected paths).
func UploadDir(dbPath string) string {
	if !postgres.IsDSN(dbPath) {
		return dbPath + ".uploads"
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	sum := sha256.Sum256([]byte(dbPath))
	return filepath.Join(base, "nano-vm-mcp", "uploads-"+hex.EncodeToString(sum[:8]))
}

// DBPath is the database this runtime opened: a bbolt file, or a
// PostgreSQL address.
func (rt *Runtime) DBPath() string { return rt.cfg.DBPath }

// ModuleBytesLimit is the ceiling on one module's size
// (ModuleLimits.ModuleBytes, --max-module-bytes; default 64 MiB).
func (rt *Runtime) ModuleBytesLimit() int64 {
	if n := rt.cfg.ModuleLimits.ModuleBytes; n > 0 {
		return n
	}
	return tools.DefaultModuleLimits().ModuleBytes
}
