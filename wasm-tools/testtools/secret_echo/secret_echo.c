// secret_echo resolves the vault ref in "ref" and echoes the value in its
// output and log: the host must scrub both back to the ref.
#include "nanovm.h"

static char secret[1024];

int nv_main(nv_str in) {
	nv_str ref; int32_t n = 0;
	if (!nv_get(in, "ref", &ref) || !nv_is_string(ref)) return nv_error("ref must be a string");
	nv_str r = nv_string(ref);
	int32_t rc = nv_host_secret_get(r.p, r.n, secret, sizeof secret, &n);
	if (rc == NV_EDENIED) return nv_error("secret_get denied");
	if (rc != NV_OK) return nv_error("secret_get failed");
	nv_host_log(1, secret, n);
	nv_out("{\"secret\":"); nv_out_cstr_n(secret, n); nv_out(",\"length\":"); nv_out_int(n); nv_out("}");
	return 0;
}
