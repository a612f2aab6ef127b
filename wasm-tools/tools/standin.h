// standin.h is the body of the payment-system stand-ins (capture_payment,
// issue_refund, reserve_funds, send_receipt, send_rejection): each answers
// an id derived from its arguments, so a replay gives the same result, its
// status, and the order_id and amount it was given. Include it after
// nanovm.h.

// STAND_IN defines the tool's nv_main, which writes
// {"<id>":"<prefix><hash of in>","status":"<status>"} with in's order_id
// and amount when present: head is `{"<id>":"<prefix>` and tail
// `","status":"<status>"`. (A macro, not a function nv_main calls: the
// tools' .wasm stay byte for byte what they were.)
#define STAND_IN(head, tail) \
	int nv_main(nv_str in) { \
		nv_str v; \
		nv_out(head); nv_out_hex(nv_hash(in)); nv_out(tail); \
		if (nv_get(in, "order_id", &v)) { nv_out(",\"order_id\":"); nv_out_raw(v); } \
		if (nv_get(in, "amount", &v)) { nv_out(",\"amount\":"); nv_out_raw(v); } \
		nv_out("}"); \
		return 0; \
	}
