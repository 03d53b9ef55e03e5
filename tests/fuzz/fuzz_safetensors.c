/* libFuzzer: st_read (core/safetensors.c) on arbitrary file bytes. */
#include "fuzz_util.h"
#include "safetensors.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) { (void)argc; (void)argv; fz_init(); return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write("f.safetensors", data, size);
    StFile f;
    Err e = {0};
    if (st_read(p, &f, &e) == 0) {
        for (int i = 0; i < f.n_tensors; i++) (void)st_find(&f, f.tensors[i].name);
        (void)st_meta(&f, "config");
        st_free(&f);
    }
    return 0;
}
