package oci

import (
	"fmt"
	"net"
	"strings"

	"oras.land/oras-go/v2/registry"
)

// Scheme prefixes every reference this package takes.
const Scheme = "oci://"

// Reference is a parsed oci://HOST/REPO:TAG or oci://HOST/REPO@sha256:HEX.
type Reference struct {
	// Registry is the host, with its port if any ("127.0.0.1:5000").
	Registry string
	// Repository is the path inside the registry ("tools/greet").
	Repository string
	// Tag is the tag, "" when the reference is by digest only.
	Tag string
	// Digest is "sha256:<hex>" when the reference names one.
	Digest string
}

// ParseReference parses "oci://HOST/REPO:TAG", "oci://HOST/REPO@DIGEST" or
// "oci://HOST/REPO:TAG@DIGEST" (the digest wins). The scheme is required,
// so that a reference is never mistaken for a tool name or a path.
func ParseReference(s string) (Reference, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return Reference{}, fmt.Errorf("%w %q: must start with %s", ErrReference, s, Scheme)
	}
	if len(s) > 1024 {
		return Reference{}, fmt.Errorf("%w: longer than 1024 characters", ErrReference)
	}
	r, err := registry.ParseReference(rest)
	if err != nil {
		return Reference{}, fmt.Errorf("%w %q: %w", ErrReference, s, err)
	}
	out := Reference{Registry: r.Registry, Repository: r.Repository}
	if strings.Contains(rest, "@") {
		d, err := r.Digest()
		if err != nil {
			return Reference{}, fmt.Errorf("%w %q: %w", ErrReference, s, err)
		}
		if d.Algorithm() != "sha256" {
			return Reference{}, fmt.Errorf("%w %q: only sha256 digests are accepted", ErrReference, s)
		}
		out.Digest = d.String()
		// "repo:tag@digest": keep the tag for display only.
		if i := strings.LastIndex(rest[:strings.Index(rest, "@")], ":"); i > strings.LastIndex(rest[:strings.Index(rest, "@")], "/") {
			out.Tag = rest[i+1 : strings.Index(rest, "@")]
		}
	} else {
		if r.Reference == "" {
			return Reference{}, fmt.Errorf("%w %q: name a tag (:TAG) or a digest (@sha256:…)", ErrReference, s)
		}
		out.Tag = r.Reference
	}
	return out, nil
}

// Ref is what oras-go resolves: the digest when there is one, else the tag.
func (r Reference) Ref() string {
	if r.Digest != "" {
		return r.Digest
	}
	return r.Tag
}

// String is the reference as ParseReference reads it.
func (r Reference) String() string {
	s := Scheme + r.Registry + "/" + r.Repository
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Pinned is the reference by digest only: oci://HOST/REPO@DIGEST.
func (r Reference) Pinned(digest string) string {
	return Scheme + r.Registry + "/" + r.Repository + "@" + digest
}

// Loopback reports whether the registry host is a loopback address
// (127.0.0.0/8, ::1, localhost), where plain HTTP is allowed.
func (r Reference) Loopback() bool {
	host := r.Registry
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
