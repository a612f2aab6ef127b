// capture_payment is a deterministic stand-in for a payment-system call: its id is
// derived from the arguments, so a replay gives the same result.
#include "nanovm.h"
#include "../standin.h"

STAND_IN("{\"capture_id\":\"cap_", "\",\"status\":\"captured\"")
