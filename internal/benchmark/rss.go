package benchmark

import (
	"bytes"
	"os"
	"strconv"
)

// statusKB reads a "Field:   123 kB" line of /proc/self/status.
func statusKB(field string) (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	return parseStatusKB(b, field)
}

// parseStatusKB finds field in the text of a /proc/<pid>/status file and
// returns its value in kB. It is false when the field is absent or its
// value is not a non-negative count of kB.
func parseStatusKB(status []byte, field string) (int64, bool) {
	prefix := []byte(field + ":")
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, false
		}
		n, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || n < 0 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// residentMB is the current resident set (VmRSS) in MiB; 0 when unknown.
func residentMB() float64 {
	kb, _ := statusKB("VmRSS")
	return float64(kb) / 1024
}

// peakMB is the peak resident set since the last resetPeak (VmHWM) in
// MiB; 0 when unknown.
func peakMB() float64 {
	kb, _ := statusKB("VmHWM")
	return float64(kb) / 1024
}

// resetPeak resets VmHWM to the current resident set (Linux 4.0+), so each
// scenario's peak is its own and not the largest of those before it.
func resetPeak() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}
