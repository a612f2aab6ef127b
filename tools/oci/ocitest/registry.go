// Package ocitest starts a real OCI registry (the distribution registry,
// Debian's docker-registry package) on loopback for tests, storing in a
// temporary folder the test can tamper with.
package ocitest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Binary is where Debian's docker-registry package installs the registry.
const Binary = "/usr/bin/docker-registry"

// Registry is a running registry.
type Registry struct {
	// Host is "127.0.0.1:PORT", what references name.
	Host string
	// Root is its storage folder (docker/registry/v2/... beneath).
	Root string
}

// Start starts a registry for t and stops it when t ends. Without the
// binary the test skips, saying how to get it; under CI=true it fails.
func Start(t testing.TB) *Registry {
	t.Helper()
	bin := Binary
	if _, err := os.Stat(bin); err != nil {
		if p, err := exec.LookPath("docker-registry"); err == nil {
			bin = p
		} else {
			msg := "needs the distribution registry: apt-get install -y docker-registry (" + Binary + ")"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "storage")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, root, host)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	// Wait until it answers /v2/ (or exits): readiness, not a timing
	// assertion; the bound only keeps a broken install from hanging.
	for deadline := time.Now().Add(60 * time.Second); ; {
		select {
		case <-exited:
			t.Fatalf("%s exited: %s", bin, logs.String())
		default:
		}
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry at %s did not answer: %v; log: %s", host, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Registry{Host: host, Root: root}
}

// BlobPath is where the registry stores the blob with digest
// "sha256:<hex>": overwrite it to tamper with the blob.
func (r *Registry) BlobPath(digest string) string {
	hex := strings.TrimPrefix(digest, "sha256:")
	return filepath.Join(r.Root, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
}
