// test_base.c — base/: the error formatter (NULL and short buffers), mkdir -p (nested, existing, a file in the
// way), rm -rf, and atomic output (commit replaces whole, abort and a failed open leave nothing behind,
// publish renames a temporary the caller wrote).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/err.h"
#include "base/fs.h"
#include "expect.h"

static char root[256];

static const char *at(const char *rel) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", root, rel);
    return buf[k];
}

static int is_dir(const char *p) {
    struct stat st;
    return !stat(p, &st) && S_ISDIR(st.st_mode);
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

static char *slurp(const char *p) {
    static char buf[256];
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

static void test_errf(void) {
    char e[8];
    EXPECT(s2s_errf(e, sizeof e, "%s-%d", "abcdef", 42) == -1, "s2s_errf returns -1");
    EXPECT(!strcmp(e, "abcdef-"), "truncated to the buffer: '%s'", e);
    EXPECT(s2s_errf(NULL, 0, "nothing %d", 1) == -1, "a NULL buffer is allowed");
}

static void test_dirs(void) {
    EXPECT(!s2s_mkdir_p(at("a/b/c")), "mkdir -p a/b/c: %s", strerror(errno));
    EXPECT(is_dir(at("a/b/c")), "a/b/c is a directory");
    EXPECT(!s2s_mkdir_p(at("a/b/c")), "mkdir -p of an existing directory succeeds");
    EXPECT(!s2s_mkdir_p(at("a//b/d/")), "doubled and trailing slashes");
    EXPECT(is_dir(at("a/b/d")), "a/b/d is a directory");
    EXPECT(s2s_mkdir_p("") == -1, "an empty path fails");
    FILE *f = fopen(at("a/file"), "w");
    fclose(f);
    EXPECT(s2s_mkdir_p(at("a/file")) == -1 && errno == ENOTDIR, "a file in the way fails with ENOTDIR");
    EXPECT(s2s_mkdir_p(at("a/file/x")) == -1, "a file in the way of a parent fails");
    EXPECT(!s2s_rm_rf(at("a")), "rm -rf a: %s", strerror(errno));
    EXPECT(!exists(at("a")), "a is gone");
    EXPECT(s2s_rm_rf(at("a")) == -1 && errno == ENOENT, "rm -rf of nothing reports ENOENT");
}

static void test_atomic(void) {
    char e[256] = "";
    const char *p = at("out.txt");
    EXPECT(!s2s_write_file_atomic(p, "one", 3, e, sizeof e), "%s", e);
    EXPECT(slurp(p) && !strcmp(slurp(p), "one"), "written whole");
    EXPECT(!s2s_write_file_atomic(p, "second", 6, e, sizeof e), "%s", e);
    EXPECT(slurp(p) && !strcmp(slurp(p), "second"), "replaced whole");

    s2s_atomic_file a;
    EXPECT(!s2s_atomic_open(&a, p, e, sizeof e), "%s", e);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", p, (int)getpid());
    EXPECT(exists(tmp), "the temporary is <path>.tmp.<pid>");
    fputs("abandoned", a.fp);
    s2s_atomic_abort(&a);
    EXPECT(!exists(tmp), "abort removes the temporary");
    EXPECT(slurp(p) && !strcmp(slurp(p), "second"), "abort leaves the file as it was");

    EXPECT(!s2s_atomic_open_tmp(&a, p, at("custom.tmp"), e, sizeof e), "%s", e);
    fputs("third", a.fp);
    EXPECT(exists(at("custom.tmp")) && slurp(p) && !strcmp(slurp(p), "second"), "only the temporary changes");
    EXPECT(!s2s_atomic_commit(&a, e, sizeof e), "%s", e);
    EXPECT(!exists(at("custom.tmp")) && !strcmp(slurp(p), "third"), "commit renames the temporary over the file");

    e[0] = 0;
    EXPECT(s2s_write_file_atomic(at("missing/x.txt"), "x", 1, e, sizeof e) == -1, "no directory: fails");
    EXPECT(strstr(e, "missing/x.txt: cannot create"), "the message names the file: %s", e);

    FILE *f = fopen(at("pub.tmp"), "w");
    fputs("published", f);
    fclose(f);
    EXPECT(!s2s_publish(at("pub.tmp"), at("pub"), e, sizeof e), "%s", e);
    EXPECT(!exists(at("pub.tmp")) && slurp(at("pub")) && !strcmp(slurp(at("pub")), "published"), "publish renames");
    EXPECT(s2s_publish(at("pub.tmp"), at("pub"), e, sizeof e) == -1 && strstr(e, "pub.tmp"),
           "publishing a missing temporary fails naming it: %s", e);
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/s2s_test_base_XXXXXX");
    if (!mkdtemp(root)) return perror("mkdtemp"), 1;
    test_errf();
    test_dirs();
    test_atomic();
    s2s_rm_rf(root);
    if (failures) { fprintf(stderr, "test_base: %d failure(s)\n", failures); return 1; }
    printf("test_base: ok\n");
    return 0;
}
