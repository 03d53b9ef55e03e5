/* Tests for core/safetensors.c: round trips (names, order, shapes, bit-exact
 * values, metadata), atomic writes, and rejection of broken files with a
 * message naming the file and the problem. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include "../core/safetensors.h"
#include "testutil.h"

static char *dir;

static void setup(void) { dir = tu_tmpdir(); }
static void teardown(void) {
    tu_rmrf(dir);
    free(dir);
}
TestSuite(safetensors, .init = setup, .fini = teardown);

/* Writes a raw safetensors file: u64 LE strlen(json), json, data. */
static char *raw_st(const char *name, const char *json, const void *data, size_t dlen) {
    size_t jl = strlen(json);
    unsigned char *buf = malloc(8 + jl + dlen + 1);
    for (int b = 0; b < 8; b++) buf[b] = (unsigned char)((uint64_t)jl >> (8 * b));
    memcpy(buf + 8, json, jl);
    if (dlen) memcpy(buf + 8 + jl, data, dlen);
    char *p = tu_write(dir, name, buf, 8 + jl + dlen);
    free(buf);
    return p;
}

/* st_read must fail, name the file and mention word; out stays empty. */
static void expect_fail(const char *path, const char *word) {
    StFile f;
    Err e = {0};
    int rc = st_read(path, &f, &e);
    cr_assert_neq(rc, 0, "st_read(%s) should fail (looking for '%s')", path, word);
    cr_assert_eq(e.code, rc);
    cr_assert(strstr(e.msg, path) != NULL, "message should name the file: %s", e.msg);
    cr_assert(strstr(e.msg, word) != NULL, "message should mention '%s': %s", word, e.msg);
    cr_assert_eq(f.n_tensors, 0);
    cr_assert_null(f.tensors);
    cr_assert_null(f.meta_keys);
}

/* Raw fixture with a JSON header and 64 bytes of data, expected to fail. */
static void broken(const char *name, const char *json, const char *word) {
    float data[16] = {0};
    char *p = raw_st(name, json, data, sizeof data);
    expect_fail(p, word);
    free(p);
}

/* ------------------------------------------------------------------ */
/* Round trips                                                          */

Test(safetensors, roundtrip_names_order_shapes_values_metadata) {
    /* Values with special bit patterns: -0, NaN payload, inf, denormal. */
    uint32_t bits[6] = {0x80000000u, 0x7fc01234u, 0x7f800000u, 0x00000001u,
                        0x3f800000u, 0xc0490fdbu};
    float a[6];
    memcpy(a, bits, sizeof a);
    float b[24];
    for (int i = 0; i < 24; i++) b[i] = (float)i * 0.1f - 1.0f;
    float scalar = 3.25f;

    StTensor t[5] = {
        {.name = "zeta.weight", .ndim = 2, .shape = {2, 3}, .numel = 6, .data = a},
        {.name = "blocks.0.mlp.experts.3.fc1.weight", .ndim = 4, .shape = {1, 2, 3, 4},
         .numel = 24, .data = b},
        {.name = "empty", .ndim = 2, .shape = {0, 5}, .numel = 0, .data = NULL},
        {.name = "scalar", .ndim = 0, .numel = 1, .data = &scalar},
        {.name = "we\"ird\\name \xc3\xa9", .ndim = 1, .shape = {6}, .numel = 6, .data = a},
    };
    const char *keys[] = {"config", "quote\"key", "empty"};
    const char *vals[] = {"[model]\ndim=192\nheads=3\n", "va\"l\\ue\t\xe2\x82\xac", ""};
    char *p = tu_path(dir, "model.safetensors");
    Err e = {0};
    cr_assert_eq(st_write(p, t, 5, keys, vals, 3, &e), 0, "%s", e.msg);
    cr_assert_eq(tu_count_tmp_files(dir), 0, "temporary file left behind");

    StFile f;
    cr_assert_eq(st_read(p, &f, &e), 0, "%s", e.msg);
    cr_assert_eq(f.n_tensors, 5);
    for (int i = 0; i < 5; i++) {
        const StTensor *r = &f.tensors[i];
        cr_assert_str_eq(r->name, t[i].name, "order must be preserved");
        cr_assert_eq(r->ndim, t[i].ndim);
        for (int d = 0; d < r->ndim; d++) cr_assert_eq(r->shape[d], t[i].shape[d]);
        cr_assert_eq(r->numel, t[i].numel);
        cr_assert_not_null(r->data);
        cr_assert_eq((uintptr_t)r->data % _Alignof(float), 0);
        if (r->numel) cr_assert_eq(memcmp(r->data, t[i].data, r->numel * 4), 0, "bit-exact");
    }
    cr_assert_eq(f.n_meta, 3);
    for (int i = 0; i < 3; i++) cr_assert_str_eq(st_meta(&f, keys[i]), vals[i]);
    cr_assert_null(st_meta(&f, "absent"));
    cr_assert_eq(st_find(&f, "scalar"), &f.tensors[3]);
    cr_assert_null(st_find(&f, "nope"));
    st_free(&f);
    st_free(&f); /* idempotent after free */
    free(p);
}

Test(safetensors, layout_header_padded_and_little_endian) {
    float x[3] = {1, 2, 3};
    StTensor t = {.name = "x", .ndim = 1, .shape = {3}, .numel = 3, .data = x};
    char *p = tu_path(dir, "x.safetensors");
    Err e = {0};
    cr_assert_eq(st_write(p, &t, 1, NULL, NULL, 0, &e), 0, "%s", e.msg);
    FILE *fp = fopen(p, "rb");
    unsigned char buf[256];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    uint64_t h = 0;
    for (int b = 0; b < 8; b++) h |= (uint64_t)buf[b] << (8 * b);
    cr_assert_eq(h % 8, 0, "header must be padded to a multiple of 8");
    cr_assert_eq(n, 8 + h + 12);
    cr_assert_eq(buf[8], '{');
    cr_assert(memmem(buf + 8, h, "\"dtype\":\"F32\"", 13) != NULL);
    cr_assert(memmem(buf + 8, h, "__metadata__", 12) == NULL, "no metadata when n_meta = 0");
    cr_assert_eq(memcmp(buf + 8 + h, x, 12), 0);
    free(p);
}

Test(safetensors, empty_file_list_and_overwrite) {
    char *p = tu_path(dir, "e.safetensors");
    Err e = {0};
    cr_assert_eq(st_write(p, NULL, 0, NULL, NULL, 0, &e), 0, "%s", e.msg);
    StFile f;
    cr_assert_eq(st_read(p, &f, &e), 0, "%s", e.msg);
    cr_assert_eq(f.n_tensors, 0);
    st_free(&f);
    /* Overwriting replaces the file. */
    float v = 7;
    StTensor t = {.name = "v", .ndim = 1, .shape = {1}, .numel = 1, .data = &v};
    cr_assert_eq(st_write(p, &t, 1, NULL, NULL, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(st_read(p, &f, &e), 0, "%s", e.msg);
    cr_assert_eq(f.n_tensors, 1);
    cr_assert_eq(f.tensors[0].data[0], 7.0f);
    st_free(&f);
    cr_assert_eq(tu_count_tmp_files(dir), 0);
    free(p);
}

Test(safetensors, reads_foreign_layout_in_reverse_order) {
    /* Offsets need not follow header order; zero-size tensors are fine. */
    float data[4] = {1, 2, 3, 4};
    char *p = raw_st("foreign.st",
                     "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
                     "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
                     "\"__metadata__\":{\"format\":\"pt\"}}  ",
                     data, sizeof data);
    StFile f;
    Err e = {0};
    cr_assert_eq(st_read(p, &f, &e), 0, "%s", e.msg);
    cr_assert_eq(f.n_tensors, 3);
    cr_assert_str_eq(f.tensors[0].name, "b");
    cr_assert_str_eq(f.tensors[1].name, "a");
    cr_assert_eq(f.tensors[0].data[0], 3.0f);
    cr_assert_eq(f.tensors[1].data[1], 2.0f);
    cr_assert_eq(f.tensors[2].numel, 0);
    cr_assert_str_eq(st_meta(&f, "format"), "pt");
    st_free(&f);
    free(p);
}

/* ------------------------------------------------------------------ */
/* Writing failures                                                     */

Test(safetensors, write_into_missing_directory_fails_cleanly) {
    float v = 1;
    StTensor t = {.name = "v", .ndim = 1, .shape = {1}, .numel = 1, .data = &v};
    char *sub = tu_path(dir, "no/such/dir");
    char *p = tu_path(sub, "m.safetensors");
    Err e = {0};
    int rc = st_write(p, &t, 1, NULL, NULL, 0, &e);
    cr_assert_eq(rc, ERR_RUNTIME);
    cr_assert(strstr(e.msg, p) != NULL, "%s", e.msg);
    cr_assert(strstr(e.msg, "No such file") != NULL, "%s", e.msg);
    cr_assert(!tu_file_exists(p));
    free(p);
    free(sub);
}

Test(safetensors, write_rejects_bad_tensors_and_leaves_no_file) {
    float v[4] = {0};
    char *p = tu_path(dir, "bad.safetensors");
    Err e = {0};
    StTensor mism = {.name = "m", .ndim = 2, .shape = {2, 3}, .numel = 4, .data = v};
    cr_assert_neq(st_write(p, &mism, 1, NULL, NULL, 0, &e), 0);
    cr_assert(strstr(e.msg, "numel") != NULL, "%s", e.msg);
    StTensor dup[2] = {{.name = "d", .ndim = 1, .shape = {1}, .numel = 1, .data = v},
                       {.name = "d", .ndim = 1, .shape = {1}, .numel = 1, .data = v}};
    cr_assert_neq(st_write(p, dup, 2, NULL, NULL, 0, &e), 0);
    cr_assert(strstr(e.msg, "duplicate") != NULL, "%s", e.msg);
    StTensor deep = {.name = "deep", .ndim = ST_MAX_DIMS + 1, .numel = 1, .data = v};
    cr_assert_neq(st_write(p, &deep, 1, NULL, NULL, 0, &e), 0);
    cr_assert(strstr(e.msg, "dims") != NULL, "%s", e.msg);
    StTensor reserved = {.name = "__metadata__", .ndim = 1, .shape = {1}, .numel = 1, .data = v};
    cr_assert_neq(st_write(p, &reserved, 1, NULL, NULL, 0, &e), 0);
    StTensor nodata = {.name = "n", .ndim = 1, .shape = {2}, .numel = 2, .data = NULL};
    cr_assert_neq(st_write(p, &nodata, 1, NULL, NULL, 0, &e), 0);
    const char *k[] = {"a", "a"}, *val[] = {"1", "2"};
    cr_assert_neq(st_write(p, NULL, 0, k, val, 2, &e), 0);
    cr_assert(strstr(e.msg, "duplicate metadata") != NULL, "%s", e.msg);
    cr_assert(strstr(e.msg, p) != NULL, "%s", e.msg);
    cr_assert(!tu_file_exists(p));
    cr_assert_eq(tu_count_tmp_files(dir), 0);
    free(p);
}

/* ------------------------------------------------------------------ */
/* Broken files                                                         */

Test(safetensors, missing_file) {
    char *p = tu_path(dir, "absent.safetensors");
    expect_fail(p, "cannot open");
    free(p);
}

Test(safetensors, directory_is_not_a_file) { expect_fail(dir, "not a regular file"); }

Test(safetensors, shorter_than_8_bytes) {
    char *p = tu_write(dir, "short.st", "abc", 3);
    expect_fail(p, "too short");
    free(p);
    p = tu_write(dir, "empty.st", "", 0);
    expect_fail(p, "too short");
    free(p);
}

Test(safetensors, header_length_larger_than_file) {
    unsigned char buf[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    char *p = tu_write(dir, "long.st", buf, sizeof buf);
    expect_fail(p, "larger than the file");
    free(p);
}

Test(safetensors, header_length_absurd) {
    unsigned char buf[16] = {0, 0, 0, 0, 0, 0, 0, 0x40, '{', '}'};
    char *p = tu_write(dir, "absurd.st", buf, sizeof buf);
    expect_fail(p, "absurd");
    free(p);
}

Test(safetensors, header_not_json) {
    broken("notjson.st", "{\"a\": {\"dtype\": ", "not valid JSON");
    broken("garbage.st", "{} trailing", "not valid JSON");
    broken("zerolen.st", "", "not valid JSON");
}

Test(safetensors, header_not_object) {
    broken("array.st", "[1,2,3]", "not a JSON object");
    broken("entry.st", "{\"a\": 5}", "not a JSON object");
}

Test(safetensors, missing_fields) {
    broken("nodtype.st", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "missing dtype");
    broken("noshape.st", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "missing shape");
    broken("nooffs.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", "missing data_offsets");
    broken("offs1.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
           "data_offsets");
}

Test(safetensors, unsupported_dtype_is_named) {
    broken("f64.st", "{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}",
           "unsupported dtype 'F64'");
    broken("i8.st", "{\"a\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[0,2]}}", "I8");
    broken("dnum.st", "{\"a\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", "dtype");
    /* a 2-byte dtype with an F32-sized span */
    broken("f16size.st", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}",
           "size mismatch");
}

/* F16 and BF16 are widened exactly: bit patterns of known values (IEEE 754
 * binary16: sign, 5-bit exponent bias 15, 10-bit mantissa; bfloat16: the top
 * 16 bits of a float), subnormals, infinities and NaN included. */
Test(safetensors, f16_and_bf16_are_widened_exactly) {
    static const uint16_t f16[] = {0x3c00, 0xc000, 0x3800, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x7e00,
                                   0x8000, 0x3555};
    static const float f16_want[] = {1.0f, -2.0f, 0.5f, 5.9604644775390625e-08f /* 2^-24 */,
                                     6.0975551605224609e-05f /* 1023 * 2^-24 */, 65504.0f, INFINITY,
                                     -INFINITY, NAN, -0.0f, 0.333251953125f};
    static const uint16_t bf16[] = {0x3f80, 0xc000, 0x0001, 0x7f80, 0x3eab, 0xff80, 0x7fc0};
    static const float bf16_want[] = {1.0f, -2.0f, 9.18354961579912e-41f /* 2^-133 */, INFINITY,
                                      0.333984375f, -INFINITY, NAN};
    enum { NF = sizeof f16 / 2, NB = sizeof bf16 / 2 };
    unsigned char data[2 * (NF + NB)];
    for (int i = 0; i < NF; i++) { data[2 * i] = f16[i] & 0xff; data[2 * i + 1] = f16[i] >> 8; }
    for (int i = 0; i < NB; i++) {
        data[2 * (NF + i)] = bf16[i] & 0xff;
        data[2 * (NF + i) + 1] = bf16[i] >> 8;
    }
    char json[256];
    snprintf(json, sizeof json,
             "{\"h\":{\"dtype\":\"F16\",\"shape\":[%d],\"data_offsets\":[0,%d]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[%d],\"data_offsets\":[%d,%d]}}",
             NF, 2 * NF, NB, 2 * NF, 2 * (NF + NB));
    char *p = raw_st("half.st", json, data, sizeof data);
    StFile f;
    Err err = {0};
    cr_assert_eq(st_read(p, &f, &err), 0, "%s", err.msg);
    const StTensor *h = st_find(&f, "h"), *b = st_find(&f, "b");
    cr_assert_str_eq(h->dtype, "F16");
    cr_assert_str_eq(b->dtype, "BF16");
    for (int i = 0; i < NF; i++) {
        if (isnan(f16_want[i])) { cr_expect(isnan(h->data[i]), "F16 %04x", f16[i]); continue; }
        cr_expect(h->data[i] == f16_want[i] && signbit(h->data[i]) == signbit(f16_want[i]),
                  "F16 %04x -> %.9g, want %.9g", f16[i], h->data[i], f16_want[i]);
    }
    for (int i = 0; i < NB; i++) {
        if (isnan(bf16_want[i])) { cr_expect(isnan(b->data[i]), "BF16 %04x", bf16[i]); continue; }
        cr_expect(b->data[i] == bf16_want[i], "BF16 %04x -> %.9g, want %.9g", bf16[i], b->data[i], bf16_want[i]);
    }
    st_free(&f);
    free(p);
}

Test(safetensors, bad_shapes) {
    broken("neg.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1,2],\"data_offsets\":[0,8]}}",
           "negative");
    broken("frac.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}",
           "not an integer");
    broken("str.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}",
           "not an integer");
    broken("notarr.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}",
           "not an array");
    broken("dims.st",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
           "too many dims");
    broken("huge.st",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}",
           "too large");
}

Test(safetensors, bad_offsets) {
    broken("order.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}",
           "before begin");
    broken("size.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
           "size mismatch");
    broken("outside.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[60,76]}}",
           "outside the data area");
    broken("negoff.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}",
           "negative");
    broken("overlap.st",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
           "overlap");
    broken("dupname.st",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
           "duplicate tensor name 'a'");
}

Test(safetensors, bad_metadata) {
    broken("metanum.st", "{\"__metadata__\":{\"k\":1}}", "__metadata__ value for 'k' is not a string");
    broken("metaobj.st", "{\"__metadata__\":[\"k\"]}", "metadata");
    broken("metadup.st", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", "duplicate");
    broken("meta2.st", "{\"__metadata__\":{},\"__metadata__\":{}}", "duplicate");
}

Test(safetensors, truncated_data_area) {
    /* Header claims 16 bytes of data, file holds 8: outside the data area. */
    float d[2] = {1, 2};
    char *p = raw_st("trunc.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                     d, sizeof d);
    expect_fail(p, "outside");
    free(p);
}

/* ------------------------------------------------------------------ */
/* Issue 11.5: every rule of the format, one broken file each           */

/* Raw fixture from explicit header bytes (may hold NULs, BOM, ...) and
 * dlen bytes of zero data. */
static void broken_bytes(const char *name, const char *hdr, size_t hl, size_t dlen,
                         const char *word) {
    unsigned char *buf = calloc(1, 8 + hl + dlen + 1);
    for (int b = 0; b < 8; b++) buf[b] = (unsigned char)((uint64_t)hl >> (8 * b));
    memcpy(buf + 8, hdr, hl);
    char *p = tu_write(dir, name, buf, 8 + hl + dlen);
    free(buf);
    expect_fail(p, word);
    free(p);
}
#define BROKEN_BYTES(name, lit, dlen, word) broken_bytes(name, lit, sizeof(lit) - 1, dlen, word)

static const char ONE_T[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";

Test(safetensors, trailing_bytes_after_the_last_tensor) {
    BROKEN_BYTES("trail.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 32,
                 "16 trailing bytes after the last tensor");
}

Test(safetensors, gap_between_two_tensors) {
    BROKEN_BYTES("gap.st",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}", 24,
                 "gap of 8 bytes in the data area before tensor 'b'");
    /* a gap at the start of the data area */
    BROKEN_BYTES("gap0.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16,
                 "gap of 8 bytes");
    /* an empty tensor placed outside the tiling is a gap too */
    BROKEN_BYTES("gapz.st",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[12,12]}}", 12, "gap");
}

Test(safetensors, header_whitespace_must_be_json_whitespace) {
    BROKEN_BYTES("bom.st", "\xEF\xBB\xBF{}", 0, "byte 0xef at byte 0");
    BROKEN_BYTES("ctl_before.st", "\x01{}", 0, "byte 0x01 at byte 0");
    BROKEN_BYTES("ctl_after.st", "{}\x0b", 0, "byte 0x0b at byte 2");
    BROKEN_BYTES("nul_pad.st", "{}\0\0\0\0\0\0", 0, "byte 0x00 at byte 2");
    /* spaces, tabs and newlines around the object are fine */
    static const char ok[] = " \t\n{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}\r\n ";
    unsigned char buf[8 + sizeof ok];
    for (int b = 0; b < 8; b++) buf[b] = (unsigned char)((uint64_t)(sizeof ok - 1) >> (8 * b));
    memcpy(buf + 8, ok, sizeof ok - 1);
    char *p = tu_write(dir, "ws_ok.st", buf, 8 + sizeof ok - 1);
    StFile f;
    Err e = {0};
    cr_assert_eq(st_read(p, &f, &e), 0, "%s", e.msg);
    st_free(&f);
    free(p);
}

Test(safetensors, tensor_names_must_be_valid_utf8) {
    BROKEN_BYTES("latin1.st", "{\"caf\xE9\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0,
                 "not valid UTF-8 (byte 0xe9 at byte 5");
    BROKEN_BYTES("overlong.st", "{\"\xC0\xAF\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0,
                 "not valid UTF-8");
    BROKEN_BYTES("surrogate.st", "{\"\xED\xA0\x80\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}",
                 0, "not valid UTF-8");
    BROKEN_BYTES("nulesc.st", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0,
                 "\\u0000");
    BROKEN_BYTES("ctlname.st", "{\"a\x01\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0,
                 "control byte 0x01 inside a string");
    /* valid multi-byte names load */
    static const char ok[] = "{\"\xC3\xA9t\xC3\xA9\xF0\x9F\x98\x80\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}";
    unsigned char buf[8 + sizeof ok];
    for (int b = 0; b < 8; b++) buf[b] = (unsigned char)((uint64_t)(sizeof ok - 1) >> (8 * b));
    memcpy(buf + 8, ok, sizeof ok - 1);
    char *p = tu_write(dir, "utf8_ok.st", buf, 8 + sizeof ok - 1);
    StFile f;
    Err e = {0};
    cr_assert_eq(st_read(p, &f, &e), 0, "%s", e.msg);
    cr_assert_str_eq(f.tensors[0].name, "\xC3\xA9t\xC3\xA9\xF0\x9F\x98\x80");
    st_free(&f);
    free(p);
}

Test(safetensors, offsets_out_of_range_overlap_and_byte_count) {
    (void)ONE_T;
    BROKEN_BYTES("range.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
                 "outside the data area");
    BROKEN_BYTES("ovl.st",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap");
    BROKEN_BYTES("count.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16,
                 "size mismatch");
    BROKEN_BYTES("dtype.st", "{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16,
                 "unsupported dtype 'F64'");
    /* F16 is 2 bytes an element: 8 elements span 16 bytes, 4 do not */
    BROKEN_BYTES("count16.st", "{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16,
                 "size mismatch");
}
