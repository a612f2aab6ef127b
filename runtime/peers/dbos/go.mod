module github.com/nanovm/nano-vm-mcp/runtime/peers/dbos

go 1.26.8

require (
	github.com/dbos-inc/dbos-transact-golang v1.8.0
	github.com/jackc/pgx/v5 v5.12.0
)

require (
	github.com/google/uuid v1.6.0 // indirect
	github.com/jackc/pgerrcode v0.0.0-20250907135507-afb5586c32a6 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	github.com/robfig/cron/v3 v3.0.1 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/text v0.42.0 // indirect
)

// The peer measures with nano-vm-mcp's own internal/benchmark/measure (Go
// allows the import: this module's path is under nano-vm-mcp's), from the
// repository it stands in.
require github.com/nanovm/nano-vm-mcp v0.0.0-00010101000000-000000000000

replace (
	github.com/nanovm/nano-vm-mcp => ../../..
	github.com/nanovm/nano-vm-mcp/wasm-tools/sdk/go => ../../../wasm-tools/sdk/go
)
