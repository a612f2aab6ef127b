//go:build !linux

package main

// lockHolder cannot tell the holder of a lock on this platform.
func lockHolder(string) (int, []string, bool) { return 0, nil, false }

func processEnv(int) []string { return nil }
