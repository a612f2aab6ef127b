package mcpserver

// The management tools put_secret and erase_secret: the vault.

import (
	"context"

	"github.com/mark3labs/mcp-go/mcp"
)

type putSecretArgs struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

type secretRef struct {
	ID  string `json:"id"`
	Ref string `json:"ref"`
}

func putSecretDef() toolDef {
	return toolDef{
		name:  "put_secret",
		title: "Store a secret",
		description: `Store a secret (API key, card token, password) encrypted at rest and get its reference vault://secret/<id>.

Use the reference, never the value, in a program's input or args: a tool granted nanovm:secrets resolves it inside its sandbox only, and the value never reaches state, traces, envelopes or logs (a tool output echoing it is scrubbed). Storing again under the same id replaces the value; an erased id cannot be reused.

Example: {"id":"stripe-key","value":"sk_live_…"} → {"ref":"vault://secret/stripe-key"}`,
		input: closed(map[string]any{
			"id":    str("The secret's id: letters, digits, '-', '_', '.'."),
			"value": str("The secret value; never echoed back."),
		}, "id", "value"),
		output: object(map[string]any{
			"id":  str("The secret's id."),
			"ref": str("vault://secret/<id>: pass this in input or args."),
		}, "id", "ref"),
		readOnly: false, destructive: true, idempotent: true, openWorld: false,
		handler: withArgs((*Server).putSecret),
	}
}

func (s *Server) putSecret(ctx context.Context, req mcp.CallToolRequest, a putSecretArgs) (any, error) {
	if err := requireString("id", a.ID); err != nil {
		return nil, err
	}
	if a.Value == "" {
		return nil, argError("argument \"value\" is required")
	}
	ref, err := s.rt.PutSecret(ctx, a.ID, a.Value)
	if err != nil {
		return nil, err
	}
	return secretRef{ID: a.ID, Ref: ref}, nil
}

type secretIDArgs struct {
	ID string `json:"id"`
}

type erased struct {
	Erased       bool   `json:"erased"`
	ID           string `json:"id"`
	EnvelopeSeq  uint64 `json:"envelope_seq"`
	EnvelopeHash string `json:"envelope_hash"`
}

func eraseSecretDef() toolDef {
	return toolDef{
		name:  "erase_secret",
		title: "Erase a secret (GDPR)",
		description: `Erase a secret for good (right to erasure): the value is destroyed, the reference tombstoned. Traces and envelopes then show [REDACTED_TOMBSTONE] where it appeared, tools can no longer resolve it, the erasure is itself appended to the audit chain, and verify_audit still holds.

Use it when the user asks to forget a secret or personal data stored with put_secret. It cannot be undone, the id cannot be reused, and erasing it again is refused (tombstoned).

Example: {"id":"card-4242"}`,
		input: closed(map[string]any{
			"id": str("The secret's id (the <id> in vault://secret/<id>)."),
		}, "id"),
		output: object(map[string]any{
			"erased":        boolean("Always true on success."),
			"id":            str("The erased secret's id."),
			"envelope_seq":  integer("Sequence number of the erasure's audit envelope."),
			"envelope_hash": str("Hash of that envelope."),
		}, "erased", "id", "envelope_seq", "envelope_hash"),
		readOnly: false, destructive: true, idempotent: false, openWorld: false,
		handler: withArgs((*Server).eraseSecret),
	}
}

func (s *Server) eraseSecret(ctx context.Context, req mcp.CallToolRequest, a secretIDArgs) (any, error) {
	if err := requireString("id", a.ID); err != nil {
		return nil, err
	}
	env, err := s.rt.EraseSecret(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	return erased{Erased: true, ID: a.ID, EnvelopeSeq: env.Seq, EnvelopeHash: env.Hash}, nil
}
