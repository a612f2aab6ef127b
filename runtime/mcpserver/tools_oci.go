package mcpserver

import (
	"context"
	"encoding/json"
)

// registerToolOCI is register_tool with "oci": the module comes from a
// registry the policy allows, with the operator's credentials.
func (s *Server) registerToolOCI(ctx context.Context, a registerArgs) (any, error) {
	var mj []byte
	manifest, err := objectMap("manifest", a.Manifest)
	if err != nil {
		return nil, err
	}
	if manifest != nil || a.Name != "" {
		if manifest == nil {
			manifest = map[string]any{}
		}
		switch n := manifest["name"].(type) {
		case nil:
			if a.Name != "" {
				manifest["name"] = a.Name
			}
		case string:
			if a.Name != "" && n != a.Name {
				return nil, argError("argument \"name\" is %q but manifest.name is %q; they must match", a.Name, n)
			}
		default:
			return nil, argError("manifest.name must be a string")
		}
		if mj, err = json.Marshal(manifest); err != nil {
			return nil, argError("argument \"manifest\": %v", err)
		}
	}
	recs, err := s.rt.RegisterToolOCI(ctx, a.OCI, mj)
	if err != nil {
		return nil, err
	}
	return registeredOf(recs), nil
}

// stepTool is the code one tool step ran, as its envelope records it:
// the module and manifest hashes, who registered it, and for a tool from
// a registry the artifact by digest and its verified signer.
type stepTool struct {
	Seq            uint64 `json:"seq"`
	StepIndex      int    `json:"step_index"`
	StepID         string `json:"step_id"`
	ModuleSHA256   string `json:"module_sha256"`
	ManifestSHA256 string `json:"manifest_sha256,omitempty"`
	Source         string `json:"tool_source,omitempty"`
	Origin         string `json:"tool_origin,omitempty"`
	Signer         string `json:"tool_signer,omitempty"`
}

func stepToolSchema() map[string]any {
	return object(map[string]any{
		"seq":             integer("The envelope."),
		"step_index":      integer("The step's index in the trace."),
		"step_id":         str("The step's id."),
		"module_sha256":   str("The module that ran."),
		"manifest_sha256": str("The manifest it ran under."),
		"tool_source":     str(`Who registered it: "bundled", "operator" or "upload".`),
		"tool_origin":     str("For a tool from a registry: the artifact by digest, oci://HOST/REPO@sha256:<hex>."),
		"tool_signer":     str("Who signed that artifact, verified at registration."),
	}, "seq", "step_index", "module_sha256")
}

// stepTools reads the tool provenance of a run's step envelopes. The
// envelopes' payloads are in their hashes, so verify_audit's check above
// covers what this shows.
func (s *Server) stepTools(ctx context.Context, traceID string) ([]stepTool, error) {
	envs, err := s.rt.Envelopes(ctx, traceID)
	if err != nil {
		return nil, err
	}
	var out []stepTool
	for _, e := range envs {
		if e.ModuleSHA256 == "" {
			continue
		}
		var p struct {
			Source string `json:"tool_source"`
			Origin string `json:"tool_origin"`
			Signer string `json:"tool_signer"`
		}
		_ = json.Unmarshal(e.Payload, &p) // a payload without them shows none
		out = append(out, stepTool{Seq: e.Seq, StepIndex: e.StepIndex, StepID: e.StepID, ModuleSHA256: e.ModuleSHA256,
			ManifestSHA256: e.ManifestSHA256, Source: p.Source, Origin: p.Origin, Signer: p.Signer})
		if len(out) >= 200 {
			break // the answer must fit; get_trace pages the rest
		}
	}
	return out, nil
}
