package runtime

import (
	"errors"
	"fmt"

	"github.com/nanovm/nano-vm-mcp/store"
)

// CodeIdempotencyCorrupt is the error code of a run_program whose
// idempotency key's stored record cannot be decoded: the key is refused
// until the operator clears it (store.ClearIdempotencyHint), since
// whether its request ran is unknown.
const CodeIdempotencyCorrupt = "idempotency_record_corrupt"

// claimError turns a failure to claim an idempotency key into the error
// the caller sees: a key over its limits is invalid_argument, a corrupt
// record names the key (clipped) and the operator's command; anything
// else keeps its cause, with the key clipped.
func claimError(key string, err error) error {
	if errors.Is(err, store.ErrInvalidID) {
		return newError(CodeInvalidArgument, err, "%s", err)
	}
	var ce *store.CorruptIdempotencyError
	if errors.As(err, &ce) {
		return newError(CodeIdempotencyCorrupt, err,
			"the server's record of idempotency key %s is damaged, so it cannot tell whether that request already ran; it refuses the key rather than risk running it twice. Use another key, or ask the operator to clear this one: %s",
			store.Clip(key), store.ClearIdempotencyHint)
	}
	return fmt.Errorf("claim idempotency key %s: %w", store.Clip(key), err)
}
