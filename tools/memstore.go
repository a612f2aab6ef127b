package tools

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
)

// MemoryStore is an in-memory Store for tests and for running without a
// database. The zero value is not usable; call NewMemoryStore.
type MemoryStore struct {
	mu       sync.RWMutex
	modules  map[string][]byte
	versions map[string]toolrecord.Record // name + "@" + module sha
	current  map[string]string            // name -> module sha
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{modules: map[string][]byte{}, versions: map[string]toolrecord.Record{}, current: map[string]string{}}
}

// PutToolVersion implements Store.
func (s *MemoryStore) PutToolVersion(_ context.Context, rec toolrecord.Record, module []byte) error {
	if rec.Name == "" || rec.ModuleSHA256 != sha256Hex(module) {
		return fmt.Errorf("put tool version %q: module hash mismatch or empty name", rec.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.modules[rec.ModuleSHA256]; !ok {
		s.modules[rec.ModuleSHA256] = slices.Clone(module)
	}
	s.versions[rec.Name+"@"+rec.ModuleSHA256] = rec
	s.current[rec.Name] = rec.ModuleSHA256
	return nil
}

// Tool implements Store.
func (s *MemoryStore) Tool(_ context.Context, name string) (toolrecord.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sha, ok := s.current[name]
	if !ok {
		return toolrecord.Record{}, toolrecord.ErrNotFound
	}
	return s.versions[name+"@"+sha], nil
}

// ToolVersion implements Store.
func (s *MemoryStore) ToolVersion(_ context.Context, name, moduleSHA256 string) (toolrecord.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec, ok := s.versions[name+"@"+moduleSHA256]
	if !ok {
		return toolrecord.Record{}, toolrecord.ErrNotFound
	}
	return rec, nil
}

// Module implements Store.
func (s *MemoryStore) Module(_ context.Context, moduleSHA256 string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.modules[moduleSHA256]
	if !ok {
		return nil, toolrecord.ErrNotFound
	}
	return b, nil
}

// Tools implements Store.
func (s *MemoryStore) Tools(_ context.Context) ([]toolrecord.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]toolrecord.Record, 0, len(s.current))
	for name, sha := range s.current {
		out = append(out, s.versions[name+"@"+sha])
	}
	slices.SortFunc(out, func(a, b toolrecord.Record) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RemoveTool implements Store.
func (s *MemoryStore) RemoveTool(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.current[name]; !ok {
		return toolrecord.ErrNotFound
	}
	delete(s.current, name)
	return nil
}

// UploadedBytes implements Store, counting each version record as its
// manifest and name plus 1 KiB.
func (s *MemoryStore) UploadedBytes(_ context.Context) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	seen := map[string]bool{}
	var n uint64
	for _, rec := range s.versions {
		if rec.EffectiveSource() != toolrecord.SourceUpload {
			continue
		}
		n += uint64(len(rec.Manifest) + len(rec.Name) + 1024)
		if !seen[rec.ModuleSHA256] {
			seen[rec.ModuleSHA256] = true
			n += uint64(len(s.modules[rec.ModuleSHA256]))
		}
	}
	return n, nil
}
