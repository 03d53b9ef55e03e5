/* Small file-system helpers, the one place for each of: creating a directory
 * path, reading a whole file, and writing a file atomically. Every result file
 * of the project is written by fs_write_atomic*: the bytes go to
 * "<path>.tmp.<pid>", are fsync'ed, renamed over path, and the directory is
 * fsync'ed, so a reader sees the old file or the new one, never a part, even
 * after a crash (docs/DESIGN.md 8.7). */
#ifndef EWA_FSUTIL_H
#define EWA_FSUTIL_H
#include <limits.h>
#include <stddef.h>
#include "err.h"

/* The size of a buffer for a path built as "<dir>/<name>": dir up to PATH_MAX
 * (a longer path fails in the system call itself), name a fixed file name or
 * "runs/<run id>/<file>" under 256 bytes. snprintf into a smaller buffer cut
 * a long --out silently to a shorter path that named another file (every
 * result written there, then removed as the previous run's); a path cut past
 * PATH_MAX is still rejected by the kernel (ENAMETOOLONG), so it fails loudly. */
#define FS_PATH_BUF (PATH_MAX + 256)

/* mkdir -p: creates dir and its missing parents (0755). ERR_RUNTIME naming
 * the first directory that cannot be created. */
int fs_mkdir_p(const char *dir, Err *err);

/* mkdir -p of the directory part of path ("a/b/c" -> "a/b"); no-op for a
 * path without '/'. */
int fs_mkdir_parents(const char *path, Err *err);

/* Reads the whole regular file path into a malloc'd buffer with a '\0'
 * appended; *len (may be NULL) receives the byte count. max_bytes > 0 rejects
 * larger files; text = 1 rejects files holding a NUL byte. On failure returns
 * `code` (the caller's choice: ERR_USAGE for a config file, ERR_RUNTIME for
 * data) with a message "<path>: cannot open: ...", "<path>: read error: ...",
 * "<path>: file too large (over N bytes)" or "<path>: contains a NUL byte".
 * Every caller reads text (CSV, INI, grid, ModelNet shapes): a UTF-8
 * byte-order mark at the start is dropped (*len excludes it). */
int fs_read_file(const char *path, size_t max_bytes, int text, int code, char **out, size_t *len,
                 Err *err);

/* Writes the concatenation of n pieces (bufs[i], lens[i] bytes) to path
 * atomically and durably (see above). ERR_RUNTIME "<path>: cannot write: ..."
 * on failure; no temporary file is left behind. */
int fs_write_atomic_parts(const char *path, int n, const void *const *bufs, const size_t *lens,
                          Err *err);
/* One piece. */
int fs_write_atomic(const char *path, const void *data, size_t len, Err *err);
/* A NUL-terminated text. */
int fs_write_text_atomic(const char *path, const char *text, Err *err);

/* Removes the temporary files "<name>.tmp.<pid>" in dir (not below it)
 * whose writer process no longer exists (kill(pid, 0) fails with ESRCH): a
 * process killed by SIGKILL or a power cut during fs_write_atomic* leaves
 * one behind. A temporary file of a live process (this one, or a concurrent
 * writer) is never touched. Nothing reads these names, so a leftover is only
 * clutter; callers clean the directories they own when a run or grid starts
 * (docs/DESIGN.md 8.7). *removed (may be NULL) gets the count. 0, or
 * ERR_RUNTIME naming a file that cannot be removed; a missing dir is 0. */
int fs_remove_stale_tmp(const char *dir, int *removed, Err *err);

/* Copies the file src to dst byte for byte (no BOM handling: any file),
 * written atomically (fs_write_atomic). ERR_RUNTIME naming the file that
 * cannot be read or written. */
int fs_copy_file(const char *src, const char *dst, Err *err);

/* Copies every regular file directly in src_dir (not below it, and no
 * temporary "<name>.tmp.<pid>" file) into dst_dir, which must exist, with
 * fs_copy_file. *ncopied (may be NULL) gets the count. */
int fs_copy_dir_files(const char *src_dir, const char *dst_dir, int *ncopied, Err *err);

/* Moves every regular file directly in src_dir into dst_dir (same file
 * system) by rename, then removes src_dir, so a set of files written into a
 * staging directory replaces its older versions together: before anything
 * moves, every target is checked, and a target that exists and is not a
 * regular file is ERR_RUNTIME naming it (nothing moved). A rename that fails
 * after that (not expected on one file system) is ERR_RUNTIME naming it. */
int fs_move_dir_files(const char *src_dir, const char *dst_dir, Err *err);

/* Removes the regular files directly in dir, then dir (best effort: for
 * cleaning a staging directory after a failure). */
void fs_remove_dir_files(const char *dir);

/* fsyncs the directory holding path, so a rename is durable (best effort). */
void fs_fsync_parent_dir(const char *path);

/* 1 if path exists and is not empty. */
int fs_file_nonempty(const char *path);

/* SHA-256 (FIPS 180-4) of the whole file path, read in 64 KiB pieces, as 64
 * lower-case hex digits into hex (NUL-terminated; "" on failure). The digest
 * is OpenSSL libcrypto's (EVP_sha256). ERR_RUNTIME "<path>: cannot open: ...",
 * "<path>: read error: ..." or "<path>: SHA-256 failed (libcrypto)". */
int fs_sha256_file(const char *path, char hex[65], Err *err);

/* SHA-256 of the n bytes at buf, as fs_sha256_file writes it; 0, or -1 (hex
 * "") on a libcrypto error. */
int fs_sha256_buf(const void *buf, size_t n, char hex[65]);

#endif
