#include "fsutil.h"
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_mkdir_p(const char *dir, Err *err) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return err_set(err, ERR_RUNTIME, "%s: path too long", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) && errno != EEXIST)
            return err_set(err, ERR_RUNTIME, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) && errno != EEXIST)
        return err_set(err, ERR_RUNTIME, "%s: cannot create directory: %s", buf, strerror(errno));
    return 0;
}

int fs_mkdir_parents(const char *path, Err *err) {
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return 0;
    char *dir = strndup(path, (size_t)(slash - path));
    if (!dir) return err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    int rc = fs_mkdir_p(dir, err);
    free(dir);
    return rc;
}

/* Reads fd to its end into *out (NUL appended); -1 with errno on failure. */
static int read_fd(int fd, size_t max_bytes, char **out, size_t *len) {
    size_t cap = 65536, n = 0;
    char *b = malloc(cap + 1);
    for (;;) {
        if (!b) { errno = ENOMEM; return -1; }
        if (n == cap) {
            char *q = realloc(b, 2 * cap + 1);
            if (!q) { free(b); errno = ENOMEM; return -1; }
            b = q;
            cap *= 2;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { int e = errno; free(b); errno = e; return -1; }
        if (r == 0) break;
        n += (size_t)r;
        if (max_bytes && n > max_bytes) break;
    }
    b[n] = '\0';
    *out = b;
    *len = n;
    return 0;
}

int fs_read_file(const char *path, size_t max_bytes, int text, int code, char **out, size_t *len,
                 Err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(err, code, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return err_set(err, code, "%s: cannot open: not a regular file", path);
    }
    char *b;
    size_t n;
    int rc = read_fd(fd, max_bytes, &b, &n);
    int e = errno;
    close(fd);
    if (rc) return err_set(err, code, "%s: read error: %s", path, strerror(e));
    const char *problem = max_bytes && n > max_bytes ? "file too large"
                          : text && strlen(b) != n   ? "contains a NUL byte"
                                                     : NULL;
    if (problem) {
        free(b);
        if (*problem == 'f')
            return err_set(err, code, "%s: file too large (over %zu bytes)", path, max_bytes);
        return err_set(err, code, "%s: %s", path, problem);
    }
    if (n >= 3 && !memcmp(b, "\xEF\xBB\xBF", 3)) {   /* a UTF-8 byte-order mark is not content */
        memmove(b, b + 3, n - 3 + 1);
        n -= 3;
    }
    *out = b;
    if (len) *len = n;
    return 0;
}

static int write_all(int fd, const char *p, size_t len) {
    while (len > 0) {
        size_t chunk = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        ssize_t w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Writes the pieces to tmp and fsyncs it; -1 with errno on failure. */
static int write_tmp(const char *tmp, int n, const void *const *bufs, const size_t *lens) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    int bad = 0;
    for (int i = 0; i < n && !bad; i++) bad = lens[i] && write_all(fd, bufs[i], lens[i]);
    if (!bad) bad = fsync(fd) != 0;
    int e = errno;
    if (close(fd) != 0 && !bad) { bad = 1; e = errno; }
    errno = e;
    return bad ? -1 : 0;
}

int fs_write_atomic_parts(const char *path, int n, const void *const *bufs, const size_t *lens,
                          Err *err) {
    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    if (!tmp) return err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    int rc = 0;
    if (write_tmp(tmp, n, bufs, lens) || rename(tmp, path)) {
        rc = err_set(err, ERR_RUNTIME, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
    } else {
        fs_fsync_parent_dir(path);
    }
    free(tmp);
    return rc;
}

int fs_write_atomic(const char *path, const void *data, size_t len, Err *err) {
    const void *bufs[1] = {data};
    size_t lens[1] = {len};
    return fs_write_atomic_parts(path, 1, bufs, lens, err);
}

int fs_write_text_atomic(const char *path, const char *text, Err *err) {
    return fs_write_atomic(path, text, strlen(text), err);
}

void fs_fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int fs_file_nonempty(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

/* Feeds fd to ctx; 0, or -1 with errno on a read error, -2 on a libcrypto error. */
static int sha256_feed(EVP_MD_CTX *ctx, int fd) {
    static _Thread_local unsigned char buf[1 << 16];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) return 0;
        if (!EVP_DigestUpdate(ctx, buf, (size_t)r)) return -2;
    }
}

int fs_sha256_file(const char *path, char hex[65], Err *err) {
    hex[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(err, ERR_RUNTIME, "%s: cannot open: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    int rc = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ? sha256_feed(ctx, fd) : -2;
    int e = errno;
    if (!rc && (!EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 32)) rc = -2;
    EVP_MD_CTX_free(ctx);
    close(fd);
    if (rc == -1) return err_set(err, ERR_RUNTIME, "%s: read error: %s", path, strerror(e));
    if (rc) return err_set(err, ERR_RUNTIME, "%s: SHA-256 failed (libcrypto)", path);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int fs_sha256_buf(const void *buf, size_t n, char hex[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    hex[0] = '\0';
    if (!EVP_Digest(buf, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) return -1;
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* The writer pid of a name "<anything>.tmp.<digits>", or 0. */
static long tmp_writer(const char *name) {
    const char *t = strstr(name, ".tmp.");
    while (t && strstr(t + 1, ".tmp.")) t = strstr(t + 1, ".tmp.");
    if (!t || t == name || !t[5]) return 0;
    char *end;
    long pid = strtol(t + 5, &end, 10);
    return *end || pid <= 0 || t[5] < '0' || t[5] > '9' ? 0 : pid;
}

int fs_copy_file(const char *src, const char *dst, Err *err) {
    FILE *f = fopen(src, "rb");
    if (!f) return err_set(err, ERR_RUNTIME, "%s: cannot open: %s", src, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            char *nb = realloc(buf, cap = cap ? 2 * cap : 1 << 16);
            if (!nb) {
                rc = err_set(err, ERR_RUNTIME, "%s: out of memory", src);
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (!rc && ferror(f)) rc = err_set(err, ERR_RUNTIME, "%s: read error: %s", src, strerror(errno));
    fclose(f);
    if (!rc) rc = fs_write_atomic(dst, buf, len, err);
    free(buf);
    return rc;
}

/* Calls f(dir/name, dst/name, ctx) for each regular file directly in dir
 * until f fails; dst may be NULL (then the second path is ""). */
static int each_file(const char *dir, const char *dst, int (*f)(const char *, const char *, void *, Err *),
                     void *ctx, Err *err) {
    DIR *d = opendir(dir);
    if (!d) return err_set(err, ERR_RUNTIME, "%s: cannot open: %s", dir, strerror(errno));
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        char src[FS_PATH_BUF], to[FS_PATH_BUF] = "";
        struct stat st;
        snprintf(src, sizeof src, "%s/%s", dir, e->d_name);
        if (stat(src, &st) || !S_ISREG(st.st_mode)) continue;
        if (dst) snprintf(to, sizeof to, "%s/%s", dst, e->d_name);
        rc = f(src, to, ctx, err);
    }
    closedir(d);
    return rc;
}

/* each_file callback: copies src to dst unless src is another writer's
 * temporary; ctx (int *, may be NULL) counts the copies. */
static int copy_one(const char *src, const char *dst, void *ctx, Err *err) {
    const char *slash = strrchr(src, '/');
    if (tmp_writer(slash ? slash + 1 : src)) return 0;
    int rc = fs_copy_file(src, dst, err);
    if (!rc && ctx) ++*(int *)ctx;
    return rc;
}

int fs_copy_dir_files(const char *src_dir, const char *dst_dir, int *ncopied, Err *err) {
    if (ncopied) *ncopied = 0;
    return each_file(src_dir, dst_dir, copy_one, ncopied, err);
}

static int check_target(const char *src, const char *dst, void *ctx, Err *err) {
    struct stat st;
    (void)src, (void)ctx;
    if (lstat(dst, &st) == 0 && !S_ISREG(st.st_mode))
        return err_set(err, ERR_RUNTIME, "%s: exists and is not a regular file; nothing was replaced", dst);
    return 0;
}

static int move_file(const char *src, const char *dst, void *ctx, Err *err) {
    (void)ctx;
    if (rename(src, dst))
        return err_set(err, ERR_RUNTIME, "%s: cannot replace it with %s: %s", dst, src, strerror(errno));
    return 0;
}

static int remove_file(const char *src, const char *dst, void *ctx, Err *err) {
    (void)dst, (void)ctx, (void)err;
    unlink(src);
    return 0;
}

int fs_move_dir_files(const char *src_dir, const char *dst_dir, Err *err) {
    int rc = each_file(src_dir, dst_dir, check_target, NULL, err);
    if (!rc) rc = each_file(src_dir, dst_dir, move_file, NULL, err);
    if (!rc) {
        char probe[FS_PATH_BUF];
        snprintf(probe, sizeof probe, "%s/x", dst_dir);   /* fsyncs probe's parent: dst_dir */
        fs_fsync_parent_dir(probe);
        rmdir(src_dir);
    }
    return rc;
}

void fs_remove_dir_files(const char *dir) {
    Err e = {0};
    each_file(dir, NULL, remove_file, NULL, &e);
    rmdir(dir);
}

int fs_remove_stale_tmp(const char *dir, int *removed, Err *err) {
    if (removed) *removed = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        long pid = tmp_writer(e->d_name);
        if (!pid || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char path[4352];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) && errno != ENOENT)
            rc = err_set(err, ERR_RUNTIME, "%s: cannot remove a stale temporary file: %s", path, strerror(errno));
        else if (removed)
            ++*removed;
    }
    closedir(d);
    return rc;
}
