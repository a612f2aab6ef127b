package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Ensure a run record that cannot be decoded (written by an older
// release, or damaged) is skipped by the listing with a note naming it,
// on every page and with every filter, while the records around it are
// listed; and reading it alone is ErrCorrupt naming it.
func TestListingSkipsUndecodableRecord(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "nano.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		e := Run{ID: fmt.Sprintf("run-%d", i), ProgramID: "p", Status: "success", CreatedAt: base.Add(time.Duration(i) * time.Second)}
		if _, err := db.PutRun(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	damaged := map[string][]byte{
		// A record nested past encoding/json's limit, as an older release
		// could store; and one cut short on disk.
		"run-3": []byte(`{"id":"run-3","status":"success","header":` + strings.Repeat("[", 10_001) + strings.Repeat("]", 10_001) + `}`),
		"run-1": []byte(`{"id":"run-1","sta`),
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		for id, v := range damaged {
			if err := tx.Bucket(bucketRuns).Put([]byte(id), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		f    RunFilter
	}{
		{"all", RunFilter{}},
		{"by program", RunFilter{ProgramID: "p"}},
		{"by status", RunFilter{Status: "success"}},
		{"pages of two", RunFilter{Limit: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var listed, skipped []string
			f := tt.f
			for range 10 {
				page, err := db.Runs(ctx, f)
				if err != nil {
					t.Fatalf("listing failed: %v", err)
				}
				if f.Limit > 0 && len(page.Runs)+len(page.Skipped) > f.Limit {
					t.Fatalf("page of %d+%d over the limit %d", len(page.Runs), len(page.Skipped), f.Limit)
				}
				for _, e := range page.Runs {
					listed = append(listed, e.ID)
				}
				for _, s := range page.Skipped {
					if s.Error == "" || len(s.Error) > 400 {
						t.Fatalf("skipped %s: note %q", s.ID, s.Error)
					}
					skipped = append(skipped, s.ID)
				}
				if f.Cursor = page.NextCursor; f.Cursor == "" {
					break
				}
			}
			if got := strings.Join(listed, ","); got != "run-4,run-2,run-0" {
				t.Errorf("listed %s", got)
			}
			if got := strings.Join(skipped, ","); got != "run-3,run-1" {
				t.Errorf("skipped %s", got)
			}
		})
	}
	for id := range damaged {
		if _, err := db.Run(ctx, id); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), id) {
			t.Errorf("Run(%s): %v", id, err)
		}
	}
	if _, err := db.Run(ctx, "run-2"); err != nil {
		t.Errorf("a good record next to damaged ones: %v", err)
	}
}
