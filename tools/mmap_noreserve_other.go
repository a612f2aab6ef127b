//go:build unix && !linux

package tools

const mapNoReserve = 0
