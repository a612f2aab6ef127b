package runtime

import "github.com/nanovm/nano-vm-mcp/tools"

// UploadDir is the folder beside the database at dbPath where the MCP
// server stages chunked module uploads (upload_module): "<db>.uploads".
// No tool may mount it (it is among the protected paths).
func UploadDir(dbPath string) string { return dbPath + ".uploads" }

// DBPath is the database file this runtime opened.
func (rt *Runtime) DBPath() string { return rt.cfg.DBPath }

// ModuleBytesLimit is the ceiling on one module's size
// (ModuleLimits.ModuleBytes, --max-module-bytes; default 64 MiB).
func (rt *Runtime) ModuleBytesLimit() int64 {
	if n := rt.cfg.ModuleLimits.ModuleBytes; n > 0 {
		return n
	}
	return tools.DefaultModuleLimits().ModuleBytes
}
