// reserve_funds is a deterministic stand-in for a payment-system call: its id is
// derived from the arguments, so a replay gives the same result.
#include "nanovm.h"

int nv_main(nv_str in) {
	nv_str v;
	nv_out("{\"reservation_id\":\"res_"); nv_out_hex(nv_hash(in)); nv_out("\",\"status\":\"reserved\"");
	if (nv_get(in, "order_id", &v)) { nv_out(",\"order_id\":"); nv_out_raw(v); }
	if (nv_get(in, "amount", &v)) { nv_out(",\"amount\":"); nv_out_raw(v); }
	nv_out("}");
	return 0;
}
