// get_order_amount returns an amount derived from the order id, so the
// refund benchmark is deterministic without a database.
#include "nanovm.h"

int nv_main(nv_str in) {
	nv_str id;
	if (!nv_get(in, "order_id", &id) || !nv_is_string(id)) return nv_error("order_id must be a string");
	nv_out("{\"order_id\":"); nv_out_raw(id);
	nv_out(",\"amount\":"); nv_out_int((int64_t)(nv_hash(nv_string(id)) % 100000) + 1);
	nv_out("}");
	return 0;
}
