// get_order_status reports an order's status: "paid" unless the id starts
// with "cancel", which lets the refund benchmark exercise both branches.
#include "nanovm.h"

int nv_main(nv_str in) {
	nv_str id;
	if (!nv_get(in, "order_id", &id) || !nv_is_string(id)) return nv_error("order_id must be a string");
	nv_str s = nv_string(id);
	int cancelled = s.n >= 6 && s.p[0] == 'c' && s.p[1] == 'a' && s.p[2] == 'n' && s.p[3] == 'c' && s.p[4] == 'e' && s.p[5] == 'l';
	nv_out("{\"order_id\":"); nv_out_raw(id);
	nv_out(cancelled ? ",\"status\":\"cancelled\"}" : ",\"status\":\"paid\"}");
	return 0;
}
