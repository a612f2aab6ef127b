// clock_random prints the wall-clock time and a random number: with
// wasi:clock and wasi:random withheld both come from wazero's deterministic
// sources, so two runs print the same thing.
#include "nanovm.h"

int nv_main(nv_str in) {
	(void)in;
	uint64_t now = 0, r = 0;
	nv_wasi_clock_time_get(0, 1, &now);
	nv_wasi_random_get(&r, sizeof r);
	nv_out("{\"time_ns\":"); nv_out_int((int64_t)(now & 0x7fffffffffffffffull));
	nv_out(",\"random\":\""); nv_out_hex(r); nv_out("\"}");
	return 0;
}
