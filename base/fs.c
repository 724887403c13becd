// fs.c — crash-safe file output and directory helpers (fs.h).
#include "fs.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "err.h"

// ---- directories ---------------------------------------------------------------------------------------

static int mkdir_one(const char *p) {
    if (!mkdir(p, 0777)) return 0;
    if (errno != EEXIST) return -1;
    struct stat st;
    if (stat(p, &st) || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int s2s_mkdir_p(const char *path) {
    if (!path || !*path) {
        errno = ENOENT;
        return -1;
    }
    char *buf = strdup(path);
    if (!buf) return -1;
    int rc = 0;
    for (char *p = buf + 1; *p && !rc; p++)
        if (*p == '/' && p[-1] != '/') {
            *p = 0;
            rc = mkdir_one(buf);
            *p = '/';
        }
    if (!rc) rc = mkdir_one(buf);
    int e = errno;
    free(buf);
    errno = e;
    return rc;
}

int s2s_rm_rf(const char *path) {
    DIR *d = opendir(path);
    if (!d) return unlink(path);
    int rc = 0, e = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        size_t n = strlen(path) + strlen(de->d_name) + 2;
        char *sub = malloc(n);
        if (!sub) { rc = -1, e = e ? e : ENOMEM; continue; }
        snprintf(sub, n, "%s/%s", path, de->d_name);
        if (s2s_rm_rf(sub) && !rc) rc = -1, e = errno;
        free(sub);
    }
    closedir(d);
    if (rmdir(path) && !rc) rc = -1, e = errno;
    if (rc) errno = e;
    return rc;
}

// ---- fsync ------------------------------------------------------------------------------------------------

int s2s_fsync_path(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int s2s_fsync_dir(const char *path_in_dir) {
    char *copy = strdup(path_in_dir);
    if (!copy) return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int s2s_publish(const char *tmp, const char *path, char *err, size_t n) {
    // Data on disk before the name points at it; the directory entry on disk before we report success.
    if (s2s_fsync_path(tmp)) return s2s_errf(err, n, "%s: fsync failed: %s", tmp, strerror(errno));
    if (rename(tmp, path)) return s2s_errf(err, n, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    s2s_fsync_dir(path);  // makes the rename durable; a failure here loses nothing already written
    return 0;
}

// ---- atomic files -----------------------------------------------------------------------------------------

static void atomic_release(s2s_atomic_file *a) {
    free(a->tmp);
    free(a->path);
    memset(a, 0, sizeof *a);
}

void s2s_atomic_abort(s2s_atomic_file *a) {
    if (a->fp) {  // the temporary exists only once it has been opened
        fclose(a->fp);
        unlink(a->tmp);
    }
    atomic_release(a);
}

int s2s_atomic_open_tmp(s2s_atomic_file *a, const char *path, const char *tmp, char *err, size_t n) {
    memset(a, 0, sizeof *a);
    a->path = strdup(path);
    a->tmp = strdup(tmp);
    if (!a->path || !a->tmp) {
        atomic_release(a);
        return s2s_errf(err, n, "%s: out of memory", path);
    }
    a->fp = fopen(a->tmp, "wb");
    if (!a->fp) {
        int e = errno;
        atomic_release(a);
        return s2s_errf(err, n, "%s: cannot create: %s", path, strerror(e));
    }
    return 0;
}

int s2s_atomic_open(s2s_atomic_file *a, const char *path, char *err, size_t n) {
    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    if (!tmp) {
        memset(a, 0, sizeof *a);
        return s2s_errf(err, n, "%s: out of memory", path);
    }
    snprintf(tmp, len, "%s.tmp.%d", path, (int)getpid());
    int rc = s2s_atomic_open_tmp(a, path, tmp, err, n);
    free(tmp);
    return rc;
}

int s2s_atomic_commit(s2s_atomic_file *a, char *err, size_t n) {
    errno = 0;
    int ok = fflush(a->fp) == 0 && fsync(fileno(a->fp)) == 0;
    int e = errno;
    ok = fclose(a->fp) == 0 && ok;
    a->fp = NULL;
    if (ok && rename(a->tmp, a->path) != 0) ok = 0, e = errno;
    if (!ok) {
        s2s_errf(err, n, "%s: write failed: %s", a->path, strerror(e ? e : EIO));
        unlink(a->tmp);
        atomic_release(a);
        return -1;
    }
    s2s_fsync_dir(a->path);  // makes the rename durable; a failure here loses nothing already written
    atomic_release(a);
    return 0;
}

int s2s_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t n) {
    s2s_atomic_file a;
    if (s2s_atomic_open(&a, path, err, n)) return -1;
    if (len && fwrite(data, 1, len, a.fp) != len) {
        int e = errno;
        s2s_atomic_abort(&a);
        return s2s_errf(err, n, "%s: write failed: %s", path, strerror(e));
    }
    return s2s_atomic_commit(&a, err, n);
}

int s2s_copy_file(const char *src, const char *dst, char *err, size_t n) {
    FILE *in = fopen(src, "rb");
    if (!in) return s2s_errf(err, n, "%s: cannot open: %s", src, strerror(errno));
    s2s_atomic_file a;
    if (s2s_atomic_open(&a, dst, err, n)) {
        fclose(in);
        return -1;
    }
    char buf[1 << 16];
    size_t got;
    int rc = 0;
    while (!rc && (got = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, got, a.fp) != got) rc = s2s_errf(err, n, "%s: write failed: %s", dst, strerror(errno));
    if (!rc && ferror(in)) rc = s2s_errf(err, n, "%s: read failed", src);
    fclose(in);
    if (rc) {
        s2s_atomic_abort(&a);
        return -1;
    }
    return s2s_atomic_commit(&a, err, n);
}

char *s2s_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = NULL;
    size_t n = 0, cap = 0;
    for (;;) {  // read to the end (a pipe or /proc file has no size to ask for)
        if (n + 4096 + 1 > cap) {
            cap = (n + 4096 + 1) * 2;
            char *nb = realloc(b, cap);
            if (!nb) {
                free(b), fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            b = nb;
        }
        const size_t got = fread(b + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    const int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        errno = EIO;
        return NULL;
    }
    b[n] = 0;
    if (len) *len = n;
    return b;
}
