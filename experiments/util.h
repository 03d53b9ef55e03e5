/* Small helpers of the harness (experiments/), each written once here:
 * allocation that aborts on exhaustion, whitespace trimming, a monotonic
 * clock. The engine (core/) never uses them: it reports errors as codes. */
#ifndef EWA_UTIL_H
#define EWA_UTIL_H
#include <stddef.h>

#include "../core/err.h"

/* malloc / realloc / strdup that print "ewa: out of memory" and abort()
 * instead of returning NULL (for small harness bookkeeping only; large
 * buffers are checked by their callers). xstrdup(NULL) returns "". */
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Removes leading and trailing blanks (space, tab, CR, LF) in place. */
void str_trim(char *s);

/* The candidate closest to word by edit distance (Levenshtein), if it is
 * close enough to be a likely typo (distance <= max(2, strlen(word) / 3)),
 * else NULL. For "did you mean" suggestions. */
const char *str_closest(const char *word, const char *const *cands, int n);

/* The next line of an in-memory INI text for inih's ini_parse_stream readers:
 * returns its start (leading blanks skipped: an indented key is a key, not
 * inih's continuation of the previous value) and its length *len including
 * the '\n'; advances *pos and increments *lineno. NULL at the end of text. */
const char *ini_text_next_line(const char **pos, int *lineno, size_t *len);

/* ini_text_next_line copied into str (num bytes: the buffer an inih
 * ini_parse_stream reader gets): returns str, or NULL at the end of text. A
 * line that does not fit becomes "\n"; the first such line sets *err_line to
 * its number and err to ERR_USAGE "line too long" (later ones leave both). */
char *ini_text_read_line(const char **pos, int *lineno, char *str, int num, int *err_line, Err *err);

/* Seconds on the monotonic clock (for durations only). */
double now_s(void);

#endif
