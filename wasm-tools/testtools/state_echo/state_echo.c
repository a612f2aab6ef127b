// state_echo returns the state projection it reads through
// nanovm.state_get as {"state": <state>}, or a tool error naming the
// status when the host refuses.
#include "nanovm.h"

static char state[8192];

int nv_main(nv_str in) {
	(void)in;
	nv_str s;
	switch (nv_state(state, sizeof state, &s)) {
	case NV_OK: break;
	case NV_EDENIED: return nv_error("state_get denied");
	case NV_ETOOSMALL: return nv_error("state_get: state too large");
	default: return nv_error("state_get failed");
	}
	nv_out("{\"state\":"); nv_out_raw(s); nv_out("}");
	return 0;
}
