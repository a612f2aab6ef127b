// Package signature verifies Sigstore bundles over an OCI artifact's
// manifest digest, offline, with sigstore-go, and signs one with a key.
//
// A bundle verifies when its signature is over the digest (a message
// signature whose digest is the manifest digest, as `nano-vm-mcp tool
// push --sign` writes; or a DSSE in-toto statement naming the digest as
// a subject, as cosign's new bundle format does) and either its public
// key is one of Trust.Keys, or its certificate chains to Trust.Root at a
// time the bundle proves (an RFC 3161 timestamp or a transparency log
// entry from an authority in the root; the current time when the root
// names none) and names one of Trust.Identities (OIDC issuer and
// subject). Nothing is fetched: the operator ships the keys and the root.
// The package does not decide which tools need a signature: the caller
// does, from the policy.
package signature
