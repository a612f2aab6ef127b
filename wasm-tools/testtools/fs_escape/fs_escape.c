// fs_escape tries to read the file named by "path", e.g. one outside its
// mount through "..": the sandbox must answer "no such file" rather than
// the host's file. It uses wasi-libc's stdio, so it also shows a libc tool.
#include <stdio.h>
#include <string.h>
#include <errno.h>

int main(void) {
	char in[1024], path[512];
	size_t n = fread(in, 1, sizeof in - 1, stdin);
	in[n] = 0;
	char *p = strstr(in, "\"path\"");
	if (!p || !(p = strchr(p + 6, '"'))) { printf("{\"error\":\"path is required\"}"); return 0; }
	size_t k = 0;
	for (p++; *p && *p != '"' && k < sizeof path - 1; p++) path[k++] = *p;
	path[k] = 0;
	FILE *f = fopen(path, "r");
	if (!f) {
		printf("{\"error\":\"open %s: %s\"}", path, strerror(errno));
		return 0;
	}
	char buf[256];
	size_t r = fread(buf, 1, sizeof buf - 1, f);
	printf("{\"read\":%zu}", r);
	return 0;
}
