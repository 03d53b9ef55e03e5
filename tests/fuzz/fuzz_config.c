/* libFuzzer: the run config grammar (experiments/config.c, inih): input =
 * INI text, NUL, then up to 8 newline-separated --set arguments. */
#include "fuzz_util.h"
#include "config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) { (void)argc; (void)argv; fz_init(); return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t alen, blen;
    const uint8_t *b;
    fz_split(data, size, &alen, &b, &blen);
    char *ini = strndup((const char *)data, alen);
    char *sets_buf = strndup((const char *)b, blen);
    char *sets[8];
    int n = 0;
    for (char *tok = sets_buf, *nl; tok && n < 8; tok = nl) {
        nl = strchr(tok, '\n');
        if (nl) *nl++ = '\0';
        if (*tok || nl) sets[n++] = tok;
    }
    RunConfig c;
    Err e = {0};
    if (config_load_string(&c, ini, "fuzz.ini", n, sets, &e) == 0) {
        char *text = config_to_ini(&c);
        RunConfig d;
        /* what config_to_ini writes must read back */
        if (text && config_load_string(&d, text, "round-trip", 0, NULL, &e) != 0) {
            fprintf(stderr, "config_to_ini output does not read back: %s\n", e.msg);
            abort();
        }
        free(text);
    }
    free(ini);
    free(sets_buf);
    return 0;
}
