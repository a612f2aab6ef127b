// fs_escape is a hostile file system guest: it does one operation named by
// "op" on "path" (and "target"), the way an attacker inside a mount would
// try to get out of it, and honest operations a real tool does, so the
// tests can show both that every escape fails and that ordinary use still
// works. It uses wasi-libc, so it also shows a libc tool.
//
//   {"path": p}                          read p (the default op)
//   {"op": "write", "path": p, "data": d} create or truncate p, write d
//   {"op": "append", "path": p, "data": d} open p for append (O_CREAT), write d
//   {"op": "open", "path": p, "flags": "rdonly,creat,trunc,..."} open and close
//   {"op": "symlink", "target": t, "path": p}  make p a symlink to t
//   {"op": "link", "target": t, "path": p}     make p a hard link to t
//   {"op": "rename", "target": t, "path": p}   rename t to p
//   {"op": "mkdir" | "rmdir" | "unlink" | "truncate" | "utimes" |
//          "readlink" | "stat" | "list", "path": p}
//   {"op": "pwrite", "path": p, "data": d}  pwrite d at offset 2, pread all back
//   {"op": "seek", "path": p}               read from offset 1
//   {"op": "setappend", "path": p, "data": d} open write-only, set O_APPEND, write d
//   {"op": "futimes", "path": p}            set times through an open descriptor
//
// It answers {"ok": true, ...} or {"error": "<op> <path>: <strerror>"}.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char in[4096];

// field copies the string value of "key" in the input into out ("" if absent).
static void field(const char *key, char *out, size_t cap) {
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\"", key);
	out[0] = 0;
	char *p = strstr(in, pat);
	if (!p) return;
	p += strlen(pat);
	while (*p == ' ' || *p == ':') p++;
	if (*p != '"') return;
	size_t k = 0;
	for (p++; *p && *p != '"' && k < cap - 1; p++) out[k++] = *p;
	out[k] = 0;
}

static int fail(const char *op, const char *path) {
	printf("{\"error\":\"%s %s: %s\"}", op, path, strerror(errno));
	return 0;
}

// text prints buf[0:n] as a JSON string of printable ASCII.
static void text(const char *buf, ssize_t n) {
	putchar('"');
	for (ssize_t i = 0; i < n; i++) {
		char c = buf[i];
		if (c == '"' || c == '\\') putchar('\\');
		putchar(c >= 32 && c < 127 ? c : '?');
	}
	putchar('"');
}

// answer_text answers {"ok":true,"text":<buf[0:n]>}.
static int answer_text(const char *buf, ssize_t n) {
	printf("{\"ok\":true,\"text\":");
	text(buf, n);
	printf("}");
	return 0;
}

static int openflags(const char *s) {
	int f = 0;
	if (strstr(s, "rdwr")) f |= O_RDWR;
	else if (strstr(s, "wronly")) f |= O_WRONLY;
	else f |= O_RDONLY;
	if (strstr(s, "creat")) f |= O_CREAT;
	if (strstr(s, "trunc")) f |= O_TRUNC;
	if (strstr(s, "append")) f |= O_APPEND;
	if (strstr(s, "excl")) f |= O_EXCL;
	if (strstr(s, "directory")) f |= O_DIRECTORY;
	if (strstr(s, "nofollow")) f |= O_NOFOLLOW;
	return f;
}

int main(void) {
	size_t n = fread(in, 1, sizeof in - 1, stdin);
	in[n] = 0;
	char op[32], path[512], target[512], data[512], flags[128];
	field("op", op, sizeof op);
	field("path", path, sizeof path);
	field("target", target, sizeof target);
	field("data", data, sizeof data);
	field("flags", flags, sizeof flags);
	if (!path[0]) { printf("{\"error\":\"path is required\"}"); return 0; }
	char buf[512];

	if (!op[0] || !strcmp(op, "read")) {
		FILE *f = fopen(path, "r");
		if (!f) return fail("open", path);
		size_t r = fread(buf, 1, 255, f);
		printf("{\"read\":%zu,\"text\":", r);
		text(buf, (ssize_t)r);
		printf("}");
		return 0;
	}
	if (!strcmp(op, "write") || !strcmp(op, "append")) {
		int fl = O_WRONLY | O_CREAT | (op[0] == 'a' ? O_APPEND : O_TRUNC);
		int fd = open(path, fl, 0644);
		if (fd < 0) return fail(op, path);
		ssize_t w = write(fd, data, strlen(data));
		if (w < 0) return fail(op, path);
		close(fd);
		printf("{\"ok\":true,\"wrote\":%zd}", w);
		return 0;
	}
	if (!strcmp(op, "open")) {
		int fd = open(path, openflags(flags), 0644);
		if (fd < 0) return fail(op, path);
		close(fd);
		printf("{\"ok\":true}");
		return 0;
	}
	if (!strcmp(op, "symlink")) {
		if (symlink(target, path) < 0) return fail(op, path);
	} else if (!strcmp(op, "link")) {
		if (link(target, path) < 0) return fail(op, path);
	} else if (!strcmp(op, "rename")) {
		if (rename(target, path) < 0) return fail(op, path);
	} else if (!strcmp(op, "mkdir")) {
		if (mkdir(path, 0755) < 0) return fail(op, path);
	} else if (!strcmp(op, "rmdir")) {
		if (rmdir(path) < 0) return fail(op, path);
	} else if (!strcmp(op, "unlink")) {
		if (unlink(path) < 0) return fail(op, path);
	} else if (!strcmp(op, "truncate")) {
		if (truncate(path, 0) < 0) return fail(op, path);
	} else if (!strcmp(op, "utimes")) {
		struct timespec ts[2] = {{1, 0}, {1, 0}};
		if (utimensat(AT_FDCWD, path, ts, 0) < 0) return fail(op, path);
	} else if (!strcmp(op, "futimes")) {
		int fd = open(path, O_RDONLY);
		if (fd < 0) return fail("open", path);
		struct timespec ts[2] = {{1, 0}, {1, 0}};
		if (futimens(fd, ts) < 0) return fail(op, path);
		close(fd);
	} else if (!strcmp(op, "readlink")) {
		ssize_t r = readlink(path, buf, sizeof buf);
		if (r < 0) return fail(op, path);
		return answer_text(buf, r);
	} else if (!strcmp(op, "stat")) {
		struct stat st;
		if (stat(path, &st) < 0) return fail(op, path);
		printf("{\"ok\":true,\"size\":%lld,\"dir\":%s}", (long long)st.st_size, S_ISDIR(st.st_mode) ? "true" : "false");
		return 0;
	} else if (!strcmp(op, "list")) {
		// List twice, rewinding in between, as ls -R and friends do.
		DIR *d = opendir(path);
		if (!d) return fail(op, path);
		printf("{\"ok\":true,\"names\":[");
		for (int pass = 0; pass < 2; pass++) {
			if (pass) { rewinddir(d); printf("],\"again\":["); }
			int first = 1;
			for (struct dirent *e; (e = readdir(d));) {
				if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
				printf("%s\"%s\"", first ? "" : ",", e->d_name);
				first = 0;
			}
		}
		printf("]}");
		closedir(d);
		return 0;
	} else if (!strcmp(op, "pwrite")) {
		int fd = open(path, O_RDWR);
		if (fd < 0) return fail("open", path);
		if (pwrite(fd, data, strlen(data), 2) < 0) return fail(op, path);
		ssize_t r = pread(fd, buf, sizeof buf, 0);
		if (r < 0) return fail("pread", path);
		return answer_text(buf, r);
	} else if (!strcmp(op, "seek")) {
		int fd = open(path, O_RDONLY);
		if (fd < 0) return fail("open", path);
		if (lseek(fd, 1, SEEK_SET) != 1) return fail(op, path);
		ssize_t r = read(fd, buf, sizeof buf);
		if (r < 0) return fail("read", path);
		return answer_text(buf, r);
	} else if (!strcmp(op, "setappend")) {
		int fd = open(path, O_WRONLY);
		if (fd < 0) return fail("open", path);
		if (fcntl(fd, F_SETFL, O_APPEND) < 0) return fail(op, path);
		if (write(fd, data, strlen(data)) < 0) return fail("write", path);
		close(fd);
	} else {
		printf("{\"error\":\"unknown op %s\"}", op);
		return 0;
	}
	printf("{\"ok\":true}");
	return 0;
}
