/* libFuzzer: cifar_load (datasets/cifar.c): the first byte picks CIFAR-10
 * (even) or CIFAR-100 (odd), the rest is the test split file. */
#include "fuzz_util.h"
#include "dataset.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) { (void)argc; (void)argv; fz_init(); return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int k = data[0] & 1 ? 100 : 10;
    fz_write(k == 10 ? "test_batch.bin" : "test.bin", data + 1, size - 1);
    ImageSet s;
    Err e = {0};
    if (cifar_load(fz_dir, k, 0, &s, &e) == 0) imageset_free(&s);
    return 0;
}
