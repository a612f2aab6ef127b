// audit_log records its arguments in the tool log (stderr) and returns an
// entry id derived from them.
#include "nanovm.h"

int nv_main(nv_str in) {
	nv_write_all(2, "audit: ", 7);
	nv_write_all(2, in.p, in.n);
	nv_write_all(2, "\n", 1);
	nv_out("{\"logged\":true,\"entry_id\":\"aud_"); nv_out_hex(nv_hash(in)); nv_out("\"}");
	return 0;
}
