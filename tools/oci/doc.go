// Package oci fetches tool modules from OCI registries and publishes them,
// with oras-go. It reads three artifact layouts: the CNCF Wasm OCI artifact
// (config application/vnd.wasm.config.v0+json, one application/wasm
// layer: what Wassette publishes), an image built FROM scratch with the
// module as /plugin.wasm in a tar layer (what hyper-mcp publishes), and
// ours, which is the Wasm artifact with the tool's manifest in the
// manifest annotation AnnotationToolManifest. It also reads and writes
// Sigstore bundles attached to an artifact through the OCI 1.1 referrers
// API (or its tag-schema fallback).
//
// Everything read from a registry is hostile: every size is bounded
// before it is read (Limits), every blob and manifest is checked against
// its digest, a tar layer is read without touching the disk under a cap
// on entries and decompressed bytes, and each refusal names the digest
// or field at fault. The package does not decide trust: which registries
// a client may name, which signatures count, and what a tool may hold are
// the caller's (runtime) to decide.
package oci
