// fs_rw reads or writes the file named by "path", for the tests that try to
// reach host files: {"path": p} returns {"content": "<up to 4 KiB>"};
// {"path": p, "write": s} writes s to p (created or truncated) and returns
// {"wrote": <bytes>}. A failure is {"error": "open <p>: <reason>"}. Strings
// are taken as written, without JSON unescaping.
#include <stdio.h>
#include <string.h>
#include <errno.h>

static char in[8192], path[1024], text[2048], data[4097];

// field copies the string value of "key" in in to out; 1 if found.
static int field(const char *key, char *out, size_t cap) {
	char pat[32];
	snprintf(pat, sizeof pat, "\"%s\"", key);
	char *p = strstr(in, pat);
	if (!p || !(p = strchr(p + strlen(pat), '"'))) return 0;
	size_t k = 0;
	for (p++; *p && *p != '"' && k < cap - 1; p++) out[k++] = *p;
	out[k] = 0;
	return 1;
}

static void put_json_string(const char *s, size_t n) {
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f) printf("\\u%04x", c);
		else putchar(c);
	}
	putchar('"');
}

int main(void) {
	size_t n = fread(in, 1, sizeof in - 1, stdin);
	in[n] = 0;
	if (!field("path", path, sizeof path)) { printf("{\"error\":\"path is required\"}"); return 0; }
	int writing = field("write", text, sizeof text);
	FILE *f = fopen(path, writing ? "w" : "r");
	if (!f) {
		printf("{\"error\":");
		char msg[1200];
		int m = snprintf(msg, sizeof msg, "open %s: %s", path, strerror(errno));
		put_json_string(msg, m > 0 ? (size_t)m : 0);
		printf("}");
		return 0;
	}
	if (writing) {
		size_t w = fwrite(text, 1, strlen(text), f);
		fclose(f);
		printf("{\"wrote\":%zu}", w);
		return 0;
	}
	size_t r = fread(data, 1, sizeof data - 1, f);
	fclose(f);
	printf("{\"content\":");
	put_json_string(data, r);
	printf("}");
	return 0;
}
