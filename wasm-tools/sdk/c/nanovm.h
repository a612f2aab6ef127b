/*
 * nanovm.h - single-header guest SDK for nano-vm-mcp tools written in C.
 *
 * Guest ABI v1 (see docs/tool-abi.md): JSON arguments on stdin, one JSON
 * value on stdout, log lines on stderr, exit code 0 for success.
 *
 * The header is freestanding: it declares the WASI and nanovm imports it
 * needs itself and needs no libc start-up, so a tool built with
 * -nostartfiles instantiates in microseconds. A tool defines
 *
 *     int nv_main(nv_str in);
 *
 * writes its result with the nv_out_* functions and returns its exit code.
 * The header then exports both `_start` (fresh instance per call) and
 * `nanovm_call` (warm pool), so one module serves both isolation modes.
 * Only imports a tool actually calls end up in the module.
 */
#ifndef NANOVM_H
#define NANOVM_H

#include <stdint.h>
#include <stddef.h>

#ifndef NV_IN_CAP
#define NV_IN_CAP 16384
#endif
#ifndef NV_OUT_CAP
#define NV_OUT_CAP 16384
#endif

#define NV_IMPORT(m, n) __attribute__((import_module(m), import_name(n)))

/* wasi:stdio */
typedef struct { const void *buf; uint32_t len; } nv_iovec;
NV_IMPORT("wasi_snapshot_preview1", "fd_read")
int32_t nv_wasi_fd_read(int32_t fd, const nv_iovec *iovs, int32_t n, uint32_t *nread);
NV_IMPORT("wasi_snapshot_preview1", "fd_write")
int32_t nv_wasi_fd_write(int32_t fd, const nv_iovec *iovs, int32_t n, uint32_t *nwritten);
NV_IMPORT("wasi_snapshot_preview1", "proc_exit")
_Noreturn void nv_wasi_proc_exit(int32_t code);
NV_IMPORT("wasi_snapshot_preview1", "clock_time_get")
int32_t nv_wasi_clock_time_get(int32_t id, int64_t precision, uint64_t *out);
NV_IMPORT("wasi_snapshot_preview1", "random_get")
int32_t nv_wasi_random_get(void *buf, uint32_t len);

/* nanovm host module, ABI v1. Status codes are NV_OK ... NV_EIO. */
NV_IMPORT("nanovm", "log")
void nv_host_log(int32_t level, const char *msg, int32_t len);
NV_IMPORT("nanovm", "secret_get")
int32_t nv_host_secret_get(const char *ref, int32_t ref_len, char *buf, int32_t cap, int32_t *out_len);
NV_IMPORT("nanovm", "http_request")
int32_t nv_host_http_request(const char *req, int32_t req_len, char *buf, int32_t cap, int32_t *out_len);
NV_IMPORT("nanovm", "state_get")
int32_t nv_host_state_get(char *buf, int32_t cap, int32_t *out_len);

enum { NV_OK = 0, NV_EDENIED = 1, NV_ETOOSMALL = 2, NV_ENOTFOUND = 3, NV_EINVAL = 4, NV_ELIMIT = 5, NV_EIO = 6 };

/* nv_str is a slice of the input or of a static buffer; never NUL-terminated. */
typedef struct { const char *p; int n; } nv_str;

static char nv_in_buf[NV_IN_CAP];
static char nv_out_buf[NV_OUT_CAP];
static int nv_out_len;
static int nv_out_overflow;

int nv_main(nv_str in);

static int nv_strlen(const char *s) { int n = 0; while (s[n]) n++; return n; }

static int nv_eq(nv_str a, const char *b) {
	int n = nv_strlen(b);
	if (a.n != n) return 0;
	for (int i = 0; i < n; i++) if (a.p[i] != b[i]) return 0;
	return 1;
}

static void nv_write_all(int fd, const char *p, int n) {
	while (n > 0) {
		nv_iovec v = { p, (uint32_t)n };
		uint32_t w = 0;
		if (nv_wasi_fd_write(fd, &v, 1, &w) != 0 || w == 0) return;
		p += w; n -= (int)w;
	}
}

/* nv_log writes one line to stderr, the tool's log. */
static void nv_log(const char *msg) {
	nv_write_all(2, msg, nv_strlen(msg));
	nv_write_all(2, "\n", 1);
}

static void nv_out_n(const char *p, int n) {
	if (nv_out_len + n > NV_OUT_CAP) { nv_out_overflow = 1; return; }
	for (int i = 0; i < n; i++) nv_out_buf[nv_out_len++] = p[i];
}
static void nv_out(const char *s) { nv_out_n(s, nv_strlen(s)); }

static void nv_out_int(int64_t v) {
	char tmp[24]; int i = 0; uint64_t u;
	if (v < 0) { nv_out("-"); u = (uint64_t)(-(v + 1)) + 1; } else u = (uint64_t)v;
	do { tmp[i++] = (char)('0' + u % 10); u /= 10; } while (u);
	while (i) nv_out_n(&tmp[--i], 1);
}

static void nv_out_hex(uint64_t v) {
	static const char d[] = "0123456789abcdef";
	for (int s = 60; s >= 0; s -= 4) nv_out_n(&d[(v >> s) & 15], 1);
}

/* nv_out_raw writes a slice as is (a raw JSON value from the input). */
static void nv_out_raw(nv_str v) { nv_out_n(v.p, v.n); }

/* nv_out_cstr writes s as a JSON string, escaping what JSON requires. */
static void nv_out_cstr_n(const char *s, int n) {
	static const char d[] = "0123456789abcdef";
	nv_out("\"");
	for (int i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') { nv_out_n("\\", 1); nv_out_n((const char *)&s[i], 1); }
		else if (c < 0x20) { char e[6] = {'\\', 'u', '0', '0', d[c >> 4], d[c & 15]}; nv_out_n(e, 6); }
		else nv_out_n((const char *)&s[i], 1);
	}
	nv_out("\"");
}
static void nv_out_cstr(const char *s) { nv_out_cstr_n(s, nv_strlen(s)); }

/* nv_error reports a tool error: the result {"error": msg}. */
static int nv_error(const char *msg) {
	nv_out_len = 0;
	nv_out("{\"error\":");
	nv_out_cstr(msg);
	nv_out("}");
	return 0;
}

static int nv_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* nv_skip returns the index just past the JSON value starting at i, or -1. */
static int nv_skip(const char *p, int n, int i) {
	while (i < n && nv_ws(p[i])) i++;
	if (i >= n) return -1;
	if (p[i] == '"') {
		for (i++; i < n; i++) {
			if (p[i] == '\\') i++;
			else if (p[i] == '"') return i + 1;
		}
		return -1;
	}
	if (p[i] == '{' || p[i] == '[') {
		int depth = 0;
		for (; i < n; i++) {
			char c = p[i];
			if (c == '"') { i = nv_skip(p, n, i); if (i < 0) return -1; i--; }
			else if (c == '{' || c == '[') depth++;
			else if (c == '}' || c == ']') { if (--depth == 0) return i + 1; }
		}
		return -1;
	}
	while (i < n && p[i] != ',' && p[i] != '}' && p[i] != ']' && !nv_ws(p[i])) i++;
	return i;
}

/* nv_get finds key at the top level of the JSON object obj; 1 if found. */
static int nv_get(nv_str obj, const char *key, nv_str *val) {
	const char *p = obj.p; int n = obj.n, i = 0;
	while (i < n && nv_ws(p[i])) i++;
	if (i >= n || p[i] != '{') return 0;
	i++;
	for (;;) {
		while (i < n && (nv_ws(p[i]) || p[i] == ',')) i++;
		if (i >= n || p[i] != '"') return 0;
		int ks = i + 1, ke = nv_skip(p, n, i);
		if (ke < 0) return 0;
		nv_str k = { p + ks, ke - 1 - ks };
		i = ke;
		while (i < n && nv_ws(p[i])) i++;
		if (i >= n || p[i] != ':') return 0;
		i++;
		while (i < n && nv_ws(p[i])) i++;
		int ve = nv_skip(p, n, i);
		if (ve < 0) return 0;
		if (nv_eq(k, key)) { val->p = p + i; val->n = ve - i; return 1; }
		i = ve;
	}
}

static int nv_is_string(nv_str v) { return v.n >= 2 && v.p[0] == '"'; }

/* nv_string strips the quotes of a JSON string; escapes stay as written. */
static nv_str nv_string(nv_str v) { nv_str s = { v.p + 1, v.n - 2 }; return s; }

/* nv_out_str writes a raw JSON string slice (quotes included) unchanged. */
static void nv_out_str(nv_str v) { nv_out_raw(v); }

/* nv_number parses a JSON number; 1 on success. */
static int nv_number(nv_str v, double *out) {
	int i = 0, neg = 0, digits = 0; double x = 0;
	if (i < v.n && v.p[i] == '-') { neg = 1; i++; }
	for (; i < v.n && v.p[i] >= '0' && v.p[i] <= '9'; i++, digits++) x = x * 10 + (v.p[i] - '0');
	if (i < v.n && v.p[i] == '.') {
		double f = 0.1;
		for (i++; i < v.n && v.p[i] >= '0' && v.p[i] <= '9'; i++, digits++, f /= 10) x += f * (v.p[i] - '0');
	}
	if (i < v.n && (v.p[i] == 'e' || v.p[i] == 'E')) {
		int eneg = 0, e = 0; i++;
		if (i < v.n && (v.p[i] == '+' || v.p[i] == '-')) eneg = v.p[i++] == '-';
		for (; i < v.n && v.p[i] >= '0' && v.p[i] <= '9'; i++) e = e * 10 + (v.p[i] - '0');
		while (e-- > 0) x = eneg ? x / 10 : x * 10;
	}
	if (!digits || i != v.n) return 0;
	*out = neg ? -x : x;
	return 1;
}

/* nv_hash is FNV-1a over s: a deterministic id source for demo tools. */
static uint64_t nv_hash(nv_str s) {
	uint64_t h = 14695981039346656037ull;
	for (int i = 0; i < s.n; i++) { h ^= (unsigned char)s.p[i]; h *= 1099511628211ull; }
	return h;
}

/* nv_state reads the call's projected state (needs nanovm:state) into buf.
 * On NV_OK *state is the JSON object, to be read with nv_get; on
 * NV_ETOOSMALL state->n is the size needed. Returns the host's status. */
static int32_t nv_state(char *buf, int cap, nv_str *state) {
	int32_t n = 0;
	int32_t rc = nv_host_state_get(buf, cap, &n);
	state->p = buf;
	state->n = (rc == NV_OK || rc == NV_ETOOSMALL) ? n : 0;
	return rc;
}

static nv_str nv_read_input(void) {
	int n = 0;
	for (;;) {
		if (n == NV_IN_CAP) { nv_str bad = { 0, -1 }; return bad; }
		nv_iovec v = { nv_in_buf + n, (uint32_t)(NV_IN_CAP - n) };
		uint32_t r = 0;
		if (nv_wasi_fd_read(0, &v, 1, &r) != 0 || r == 0) break;
		n += (int)r;
	}
	nv_str s = { nv_in_buf, n };
	return s;
}

/* nanovm_call runs one call: the pooled entry point, also used by _start. */
__attribute__((export_name("nanovm_call"))) int32_t nanovm_call(void) {
	nv_out_len = 0;
	nv_out_overflow = 0;
	nv_str in = nv_read_input();
	int rc;
	if (in.n < 0) rc = nv_error("input too large");
	else rc = nv_main(in);
	if (nv_out_overflow) { nv_error("output too large"); rc = 0; }
	nv_write_all(1, nv_out_buf, nv_out_len);
	return rc;
}

__attribute__((export_name("_start"))) void _start(void) {
	int32_t rc = nanovm_call();
	if (rc != 0) nv_wasi_proc_exit(rc);
}

#endif
