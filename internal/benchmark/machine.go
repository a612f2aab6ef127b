package benchmark

import (
	"bytes"
	"os"
	goruntime "runtime"
	"strings"
)

// MachineInfo says where a benchmark ran, for the report beside its
// figures.
type MachineInfo struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	GoVersion string `json:"go_version"`
}

// Machine describes this machine: the CPU model comes from /proc/cpuinfo
// and is "" elsewhere than Linux.
func Machine() MachineInfo {
	m := MachineInfo{CPUs: goruntime.NumCPU(), OS: goruntime.GOOS, Arch: goruntime.GOARCH, GoVersion: goruntime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = cpuModel(b)
	}
	return m
}

// cpuModel returns the first "model name" of a /proc/cpuinfo text.
func cpuModel(cpuinfo []byte) string {
	for line := range bytes.Lines(cpuinfo) {
		k, v, ok := strings.Cut(string(line), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
