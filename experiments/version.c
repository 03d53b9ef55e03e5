/* Provenance of the binary: the git commit and dirty flag at build time
 * (the Makefile rebuilds this file on every `make`). */
#ifndef EWA_GIT_COMMIT
#define EWA_GIT_COMMIT "unknown"
#endif
#ifndef EWA_GIT_DIRTY
#define EWA_GIT_DIRTY -1
#endif
const char *ewa_git_commit(void) { return EWA_GIT_COMMIT; }
int ewa_git_dirty(void) { return EWA_GIT_DIRTY; }
