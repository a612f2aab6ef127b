// validate_amount checks that "amount" is a positive number.
#include "nanovm.h"

int nv_main(nv_str in) {
	nv_str v; double amount;
	if (!nv_get(in, "amount", &v)) return nv_error("amount is required");
	if (!nv_number(v, &amount)) return nv_error("amount must be a number");
	if (!(amount > 0)) return nv_error("amount must be positive");
	nv_out("{\"valid\":true,\"amount\":"); nv_out_raw(v); nv_out("}");
	return 0;
}
