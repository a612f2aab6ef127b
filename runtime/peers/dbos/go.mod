module github.com/nanovm/nano-vm-mcp/runtime/peers/dbos

go 1.25.0

require (
	github.com/dbos-inc/dbos-transact-golang v1.8.0
	github.com/jackc/pgx/v5 v5.10.0
)

require (
	github.com/google/uuid v1.6.0 // indirect
	github.com/jackc/pgerrcode v0.0.0-20250907135507-afb5586c32a6 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.2 // indirect
	github.com/robfig/cron/v3 v3.0.1 // indirect
	golang.org/x/sync v0.22.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)

// The peer measures with nano-vm-mcp's internal/benchmark/measure, a
// module of its own without requirements, so nothing of nano-vm-mcp's
// module graph reaches the peer's (Go allows the import: this module's
// path is under nano-vm-mcp's).
require github.com/nanovm/nano-vm-mcp/internal/benchmark/measure v0.0.0-00010101000000-000000000000

replace github.com/nanovm/nano-vm-mcp/internal/benchmark/measure => ../../../internal/benchmark/measure
