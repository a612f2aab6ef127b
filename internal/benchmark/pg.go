package benchmark

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanovm/nano-vm-mcp/internal/benchmark/measure"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
)

// pgBench is the PostgreSQL side of an Env whose Config.DBPath is a
// postgres:// address: the scenarios run on a fresh database created on
// that server (as a bbolt bench runs on a fresh file), dropped at Close
// unless Keep.
type pgBench struct {
	admin string // the address given, on which the database is created
	name  string // the fresh database
	dsn   string // its address
	// durability is the server's fsync and synchronous_commit.
	durability string
	// server measures the server's CPU when it runs on this machine.
	server    *measure.Server
	serverErr error
}

// createPGDatabase creates a fresh database on the server addr names and
// returns how to reach it.
func createPGDatabase(ctx context.Context, addr string) (*pgBench, error) {
	red := postgres.Redact(addr)
	conn, err := pgx.Connect(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", red, err)
	}
	defer conn.Close(context.Background())
	var fsync, syncCommit, dataDir string
	if err := conn.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('data_directory')`).Scan(&fsync, &syncCommit, &dataDir); err != nil {
		return nil, fmt.Errorf("read the settings of %s: %w", red, err)
	}
	p := &pgBench{admin: addr, name: fmt.Sprintf("nano_vm_mcp_bench_%d_%d", os.Getpid(), time.Now().UnixNano())}
	p.durability = fmt.Sprintf("PostgreSQL fsync=%s, synchronous_commit=%s", fsync, syncCommit)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+p.name); err != nil {
		return nil, fmt.Errorf("create database %s on %s: %w", p.name, red, err)
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", red, err)
	}
	u.Path = "/" + p.name
	p.dsn = u.String()
	p.server, p.serverErr = measure.FindServer(dataDir)
	return p, nil
}

// drop removes the fresh database.
func (p *pgBench) drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.admin)
	if err != nil {
		return fmt.Errorf("drop bench database %s: %w", p.name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+p.name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop bench database %s: %w", p.name, err)
	}
	return nil
}
