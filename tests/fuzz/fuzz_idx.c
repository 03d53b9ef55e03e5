/* libFuzzer: idx_load (datasets/idx.c): input = 2-byte big-endian length L,
 * L bytes of images file, then the labels file (plain or gzip: zlib reads
 * both). */
#include "fuzz_util.h"
#include "dataset.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) { (void)argc; (void)argv; fz_init(); return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t alen = (size_t)data[0] << 8 | data[1];
    if (alen > size - 2) alen = size - 2;
    const char *img = fz_write("images", data + 2, alen);
    const char *lab = fz_write("labels", data + 2 + alen, size - 2 - alen);
    ImageSet s;
    Err e = {0};
    if (idx_load(img, lab, &s, &e) == 0) imageset_free(&s);
    return 0;
}
