package tools

import (
	"errors"
	"time"

	"github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin"
)

// Sentinel errors of the structural pre-check (see also errors.go).
var (
	// ErrInvalidModule is returned when a module is not well-formed
	// WebAssembly, uses a feature the host's runtime does not enable
	// (threads, tail calls, exceptions, ...), or fails the runtime's
	// validation when compiled.
	ErrInvalidModule = errors.New("invalid module")
	// ErrModuleLimit is returned when a module declares more of something
	// than a ModuleLimits ceiling allows (size, counts, locals, body size,
	// nesting, br_table targets, table entries); the message names what
	// and the ceiling. Nothing of the module is compiled.
	ErrModuleLimit = errors.New("module exceeds a ceiling")
	// ErrImportSignature is returned (gate A) when a module imports a host
	// function under its right name with another signature; the message
	// names both signatures.
	ErrImportSignature = errors.New("import signature mismatch")
)

// ModuleLimits are the server-wide ceilings every module is checked
// against at registration, structurally and before anything is compiled.
// The operator sets them (HostOptions.ModuleLimits); a zero field takes
// its default from DefaultModuleLimits. The defaults follow V8's
// wasm-limits.h where it has one, and were measured for the rest so that
// the worst function within them compiles in seconds (.rationale/sandbox.md).
type ModuleLimits struct {
	// ModuleBytes caps a module's size. Default 64 MiB.
	ModuleBytes int64
	// Types caps the type section's entries. Default 100,000.
	Types uint32
	// Params and Results cap one function type's parameters and
	// results. Default 1,000 each (V8).
	Params, Results uint32
	// Imports and Exports cap those sections' entries. Default 100,000
	// each (V8).
	Imports, Exports uint32
	// Functions caps the functions a module defines. Default 200,000.
	Functions uint32
	// Globals caps the globals, defined and imported. Default 100,000.
	Globals uint32
	// Tables caps the tables, defined and imported. Default 100.
	Tables uint32
	// TableElements caps one table's size: a declared minimum above it is
	// refused, and every table's maximum is held to it (a table declaring
	// none, or a larger one, is given this one), so table.grow past it
	// returns -1. Default 1,000,000 entries (8 MB).
	TableElements uint32
	// ElemSegments and DataSegments cap the element and data segments.
	// Default 100,000 element segments and 1,000,000 data segments (Go's
	// linker writes about one data segment per 66 bytes of module).
	ElemSegments, DataSegments uint32
	// ElemEntries caps the entries of all element segments together.
	// Default 1,000,000.
	ElemEntries uint32
	// FunctionLocals caps one function's locals (not counting its
	// parameters). Default 50,000 (V8).
	FunctionLocals uint32
	// TotalLocals caps the locals of all functions together. Default
	// 2,000,000.
	TotalLocals uint64
	// FunctionBodyBytes caps one function body. Default 1 MiB.
	FunctionBodyBytes uint32
	// Nesting caps the depth of block, loop and if nesting in one
	// function. Default 4,096.
	Nesting uint32
	// BrTableTargets caps the targets of all br_table instructions of one
	// function together, defaults included. Default 32,768.
	BrTableTargets uint32
	// CustomSections caps the custom sections. Default 1,024.
	CustomSections uint32
	// CompileTimeout bounds one compilation; past it registration fails
	// with ErrTimeout. The caller's context cancels it sooner. Default 60s.
	CompileTimeout time.Duration
	// Compilations bounds the compilations running at once; a further
	// registration waits for a slot, or gives up when its context ends.
	// Default 2.
	Compilations int
}

// DefaultModuleLimits returns the default ceilings.
func DefaultModuleLimits() ModuleLimits {
	return ModuleLimits{
		ModuleBytes:       64 << 20,
		Types:             100_000,
		Params:            1_000,
		Results:           1_000,
		Imports:           100_000,
		Exports:           100_000,
		Functions:         200_000,
		Globals:           100_000,
		Tables:            100,
		TableElements:     1_000_000,
		ElemSegments:      100_000,
		DataSegments:      1_000_000,
		ElemEntries:       1_000_000,
		FunctionLocals:    50_000,
		TotalLocals:       2_000_000,
		FunctionBodyBytes: 1 << 20,
		Nesting:           4_096,
		BrTableTargets:    32_768,
		CustomSections:    1_024,
		CompileTimeout:    60 * time.Second,
		Compilations:      2,
	}
}

// withDefaults fills every zero field from DefaultModuleLimits.
func (l ModuleLimits) withDefaults() ModuleLimits {
	d := DefaultModuleLimits()
	set := func(v *uint32, def uint32) {
		if *v == 0 {
			*v = def
		}
	}
	if l.ModuleBytes <= 0 {
		l.ModuleBytes = d.ModuleBytes
	}
	set(&l.Types, d.Types)
	set(&l.Params, d.Params)
	set(&l.Results, d.Results)
	set(&l.Imports, d.Imports)
	set(&l.Exports, d.Exports)
	set(&l.Functions, d.Functions)
	set(&l.Globals, d.Globals)
	set(&l.Tables, d.Tables)
	set(&l.TableElements, d.TableElements)
	set(&l.ElemSegments, d.ElemSegments)
	set(&l.DataSegments, d.DataSegments)
	set(&l.ElemEntries, d.ElemEntries)
	set(&l.FunctionLocals, d.FunctionLocals)
	if l.TotalLocals == 0 {
		l.TotalLocals = d.TotalLocals
	}
	set(&l.FunctionBodyBytes, d.FunctionBodyBytes)
	set(&l.Nesting, d.Nesting)
	set(&l.BrTableTargets, d.BrTableTargets)
	set(&l.CustomSections, d.CustomSections)
	if l.CompileTimeout <= 0 {
		l.CompileTimeout = d.CompileTimeout
	}
	if l.Compilations <= 0 {
		l.Compilations = d.Compilations
	}
	return l
}

// parseLimits is l as the structural reader takes it.
func (l ModuleLimits) parseLimits() wasmbin.Limits {
	return wasmbin.Limits{
		Types: l.Types, Params: l.Params, Results: l.Results, Imports: l.Imports, Functions: l.Functions,
		Tables: l.Tables, TableElements: l.TableElements, Globals: l.Globals, Exports: l.Exports,
		ElemSegments: l.ElemSegments, ElemEntries: l.ElemEntries, DataSegments: l.DataSegments,
		FunctionLocals: l.FunctionLocals, TotalLocals: l.TotalLocals, BodyBytes: l.FunctionBodyBytes,
		Nesting: l.Nesting, BrTableTargets: l.BrTableTargets, Customs: l.CustomSections,
	}
}
