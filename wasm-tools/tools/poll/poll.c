// poll answers "PENDING" (which suspends the run) until its arguments carry
// a "status" other than PENDING, which it passes on as payment_status.
#include "nanovm.h"

int nv_main(nv_str in) {
	nv_str st;
	if (!nv_get(in, "status", &st) || !nv_is_string(st) || nv_eq(nv_string(st), "PENDING")) {
		nv_out("\"PENDING\"");
		return 0;
	}
	nv_out("{\"payment_status\":"); nv_out_raw(st); nv_out("}");
	return 0;
}
