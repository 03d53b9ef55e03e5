/* Small file-system helpers shared by the writers of results: every result
 * file is written to "<path>.tmp.<pid>" and renamed into place (DESIGN 6). */
#ifndef EWA_FSUTIL_H
#define EWA_FSUTIL_H
#include "err.h"

/* mkdir -p: creates dir and its missing parents (0755). */
int fs_mkdir_p(const char *dir, Err *err);
/* Writes text to path atomically (tmp + rename). */
int fs_write_text_atomic(const char *path, const char *text, Err *err);
/* fsyncs the directory holding path, so a rename is durable (best effort). */
void fs_fsync_parent_dir(const char *path);

#endif
