// http_get fetches "url" through nanovm.http_request and returns the
// host's response object as its result.
#include "nanovm.h"

#define NV_RESP_CAP 8192
static char resp[NV_RESP_CAP];
static char req[2048];

int nv_main(nv_str in) {
	nv_str url; int32_t n = 0;
	if (!nv_get(in, "url", &url) || !nv_is_string(url) || url.n > 1900) return nv_error("url must be a short string");
	int k = 0;
	const char *a = "{\"method\":\"GET\",\"url\":";
	for (int i = 0; a[i]; i++) req[k++] = a[i];
	for (int i = 0; i < url.n; i++) req[k++] = url.p[i];
	req[k++] = '}';
	int32_t rc = nv_host_http_request(req, k, resp, NV_RESP_CAP, &n);
	switch (rc) {
	case NV_OK: nv_out_n(resp, n); return 0;
	case NV_EDENIED: return nv_error("http_request denied: host not allowed");
	case NV_ETOOSMALL: return nv_error("http_request: response too large");
	case NV_ELIMIT: return nv_error("http_request: limit exceeded");
	default: return nv_error("http_request failed");
	}
}
