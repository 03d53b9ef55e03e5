/* libFuzzer: modelnet40_load (datasets/modelnet40.c). First byte even: the
 * rest is the one shape file (chair/chair_0001.txt, lines x,y,z,nx,ny,nz)
 * of a fixed one-class layout; odd: the rest is the shape-names file, NUL,
 * the test list (shape files absent: the lists are what is parsed). */
#include "fuzz_util.h"
#include "points.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) { (void)argc; (void)argv; fz_init(); return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char names[] = "chair\n", list[] = "chair_0001\n";
    if (data[0] & 1) {
        size_t alen, blen;
        const uint8_t *b;
        fz_split(data + 1, size - 1, &alen, &b, &blen);
        fz_write("modelnet40_shape_names.txt", data + 1, alen);
        fz_write("modelnet40_test.txt", b, blen);
    } else {
        fz_write("modelnet40_shape_names.txt", (const uint8_t *)names, sizeof names - 1);
        fz_write("modelnet40_test.txt", (const uint8_t *)list, sizeof list - 1);
        fz_write("chair/chair_0001.txt", data + 1, size - 1);
    }
    PointSet s;
    Err e = {0};
    if (modelnet40_load(fz_dir, 0, 4, (PointSample)(data[0] >> 1) % 3, 1, &s, &e) == 0)
        pointset_free(&s);
    return 0;
}
