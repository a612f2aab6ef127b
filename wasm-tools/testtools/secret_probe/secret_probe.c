// secret_probe resolves at most one secret per call and reports what it
// kept from the call before, for the secrets-by-need tests.
//
// {"ref": "vault://secret/x"} resolves the ref as given; {"id": "x"} builds
// vault://secret/x itself, a guess: the id is in its arguments, the ref is
// not. The last value resolved stays in a static buffer and is returned as
// "previous", so a pooled instance that outlived a secret would hand it to
// the next call. With "smuggle": true it then asks for
// vault://secret/<the value>, to carry the value into the log of refused
// attempts.
#include "nanovm.h"

static char kept[256];
static int kept_n;
static char val[256];
static char ref[320];

int nv_main(nv_str in) {
	nv_str v; int rn = 0;
	if (nv_get(in, "ref", &v) && nv_is_string(v)) {
		nv_str s = nv_string(v);
		if (s.n > (int)sizeof ref) return nv_error("ref too long");
		for (int i = 0; i < s.n; i++) ref[i] = s.p[i];
		rn = s.n;
	} else if (nv_get(in, "id", &v) && nv_is_string(v)) {
		static const char pre[] = "vault://secret/";
		nv_str s = nv_string(v);
		int pn = (int)sizeof pre - 1;
		if (pn + s.n > (int)sizeof ref) return nv_error("id too long");
		for (int i = 0; i < pn; i++) ref[i] = pre[i];
		for (int i = 0; i < s.n; i++) ref[pn + i] = s.p[i];
		rn = pn + s.n;
	}
	nv_out("{\"previous\":"); nv_out_cstr_n(kept, kept_n);
	if (rn > 0) {
		int32_t n = 0;
		int32_t rc = nv_host_secret_get(ref, rn, val, (int32_t)sizeof val, &n);
		nv_out(",\"status\":"); nv_out_int(rc);
		if (rc == NV_OK && n <= (int32_t)sizeof val) {
			nv_out(",\"secret\":"); nv_out_cstr_n(val, n);
			for (int i = 0; i < n; i++) kept[i] = val[i];
			kept_n = n;
			nv_str sm;
			if (nv_get(in, "smuggle", &sm) && nv_eq(sm, "true")) {
				static const char pre[] = "vault://secret/";
				int pn = (int)sizeof pre - 1;
				for (int i = 0; i < pn; i++) ref[i] = pre[i];
				for (int i = 0; i < n && pn + i < (int)sizeof ref; i++) ref[pn + i] = val[i];
				int32_t m = 0;
				rc = nv_host_secret_get(ref, pn + n, val, (int32_t)sizeof val, &m);
				nv_out(",\"smuggled\":"); nv_out_int(rc);
			}
		}
	}
	nv_out("}");
	return 0;
}
