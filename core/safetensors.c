/* safetensors reader (F32, F16, BF16; widened to float) and writer (F32).
 *
 * Layout: an 8-byte little-endian u64 N, then N bytes of JSON header, then the
 * data area. The header maps tensor names to
 *   {"dtype":"F32","shape":[...],"data_offsets":[begin,end]}
 * (offsets relative to the data area) plus an optional "__metadata__" object
 * of string -> string. The header is parsed and printed with cJSON.
 *
 * Writes go to "<path>.tmp.<pid>", are fsync'ed and renamed into place; the
 * temporary file is removed on any failure. Reads validate the whole header
 * before touching the data and report "<path>: <problem>". */
#include "safetensors.h"
#include "fsutil.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tensor bytes are written and read as they lie in memory. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors.c assumes a little-endian host");
_Static_assert(sizeof(float) == 4, "float must be 32 bits");

#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)   /* 100 MB */
#define ST_MAX_EXACT  9007199254740992.0               /* 2^53: exact in a double */
#define META_KEY      "__metadata__"

/* ------------------------------------------------------------------ */
/* Low-level I/O                                                       */

/* Reads exactly len bytes at off: 0 ok, -1 error (errno), 1 end of file. */
static int pread_all(int fd, void *buf, size_t len, uint64_t off) {
    char *p = buf;
    while (len > 0) {
        size_t chunk = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        ssize_t r = pread(fd, p, chunk, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) return 1;
        p += r;
        off += (uint64_t)r;
        len -= (size_t)r;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

/* Product of the dims, or 0 with *ok = 0 if it does not fit. */
static uint64_t shape_numel(const int64_t *shape, int ndim, int *ok) {
    uint64_t n = 1;
    *ok = 1;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (d != 0 && n > (UINT64_MAX / 4) / d) { *ok = 0; return 0; }
        n *= d;
    }
    return n;
}

/* Checks the caller's tensors and metadata before anything is written. */
static int check_write_args(const char *path, const StTensor *t, int n,
                            const char *const *keys, const char *const *vals,
                            int n_meta, Err *err) {
    if (n < 0 || (n > 0 && !t) || n_meta < 0 || (n_meta > 0 && (!keys || !vals)))
        return err_set(err, ERR_RUNTIME, "%s: invalid arguments to st_write", path);
    for (int i = 0; i < n; i++) {
        const char *nm = t[i].name;
        if (!nm || !*nm)
            return err_set(err, ERR_RUNTIME, "%s: tensor %d has no name", path, i);
        if (strcmp(nm, META_KEY) == 0)
            return err_set(err, ERR_RUNTIME, "%s: tensor name '%s' is reserved", path, nm);
        if (t[i].ndim < 0 || t[i].ndim > ST_MAX_DIMS)
            return err_set(err, ERR_RUNTIME, "%s: tensor '%s': %d dims (too many dims, max %d)",
                           path, nm, t[i].ndim, ST_MAX_DIMS);
        for (int d = 0; d < t[i].ndim; d++)
            if (t[i].shape[d] < 0)
                return err_set(err, ERR_RUNTIME, "%s: tensor '%s': shape[%d] is negative",
                               path, nm, d);
        int ok;
        uint64_t numel = shape_numel(t[i].shape, t[i].ndim, &ok);
        if (!ok || (double)numel * 4 > ST_MAX_EXACT)
            return err_set(err, ERR_RUNTIME, "%s: tensor '%s': shape is too large", path, nm);
        if (numel != (uint64_t)t[i].numel)
            return err_set(err, ERR_RUNTIME,
                           "%s: tensor '%s': numel %zu does not match its shape (%" PRIu64 ")",
                           path, nm, t[i].numel, numel);
        if (numel > 0 && !t[i].data)
            return err_set(err, ERR_RUNTIME, "%s: tensor '%s' has no data", path, nm);
        for (int j = 0; j < i; j++)
            if (strcmp(t[j].name, nm) == 0)
                return err_set(err, ERR_RUNTIME, "%s: duplicate tensor name '%s'", path, nm);
    }
    for (int i = 0; i < n_meta; i++) {
        if (!keys[i] || !vals[i])
            return err_set(err, ERR_RUNTIME, "%s: metadata entry %d is NULL", path, i);
        for (int j = 0; j < i; j++)
            if (strcmp(keys[j], keys[i]) == 0)
                return err_set(err, ERR_RUNTIME, "%s: duplicate metadata key '%s'", path, keys[i]);
    }
    return 0;
}

/* Adds {"dtype","shape","data_offsets"} for one tensor; 0 on success. */
static int add_tensor_json(cJSON *root, const StTensor *t, uint64_t begin, uint64_t end) {
    cJSON *e = cJSON_CreateObject();
    if (!e) return -1;
    if (!cJSON_AddItemToObject(root, t->name, e)) { cJSON_Delete(e); return -1; }
    if (!cJSON_AddStringToObject(e, "dtype", "F32")) return -1;
    cJSON *shape = cJSON_AddArrayToObject(e, "shape");
    cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
    if (!shape || !offs) return -1;
    for (int d = 0; d < t->ndim; d++) {
        cJSON *v = cJSON_CreateNumber((double)t->shape[d]);
        if (!v || !cJSON_AddItemToArray(shape, v)) { cJSON_Delete(v); return -1; }
    }
    double ob[2] = {(double)begin, (double)end};
    for (int k = 0; k < 2; k++) {
        cJSON *v = cJSON_CreateNumber(ob[k]);
        if (!v || !cJSON_AddItemToArray(offs, v)) { cJSON_Delete(v); return -1; }
    }
    return 0;
}

/* Builds the JSON header padded with spaces to a multiple of 8 bytes.
 * Returns a malloc'd buffer (not NUL-terminated) or NULL on out-of-memory. */
static char *build_header(const StTensor *t, int n, const char *const *keys,
                          const char *const *vals, int n_meta, size_t *len) {
    cJSON *root = cJSON_CreateObject();
    char *printed = NULL, *out = NULL;
    if (!root) return NULL;
    if (n_meta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, META_KEY);
        if (!meta) goto done;
        for (int i = 0; i < n_meta; i++)
            if (!cJSON_AddStringToObject(meta, keys[i], vals[i])) goto done;
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t bytes = (uint64_t)t[i].numel * 4;
        if (add_tensor_json(root, &t[i], off, off + bytes) != 0) goto done;
        off += bytes;
    }
    printed = cJSON_PrintUnformatted(root);
    if (!printed) goto done;
    size_t plen = strlen(printed);
    size_t padded = (plen + 7) & ~(size_t)7;
    out = malloc(padded ? padded : 8);
    if (!out) goto done;
    memcpy(out, printed, plen);
    memset(out + plen, ' ', padded - plen);
    *len = padded;
done:
    free(printed);
    cJSON_Delete(root);
    return out;
}

int st_write(const char *path, const StTensor *tensors, int n_tensors,
             const char *const *meta_keys, const char *const *meta_vals, int n_meta,
             Err *err) {
    if (!path) return err_set(err, ERR_RUNTIME, "st_write: no path given");
    int rc = check_write_args(path, tensors, n_tensors, meta_keys, meta_vals, n_meta, err);
    if (rc) return rc;

    size_t hlen = 0;
    char *hdr = build_header(tensors, n_tensors, meta_keys, meta_vals, n_meta, &hlen);
    if (!hdr) return err_set(err, ERR_RUNTIME, "%s: out of memory building the header", path);
    /* the pieces: header length (u64 little-endian), header, tensor data */
    unsigned char lenbuf[8];
    for (int b = 0; b < 8; b++) lenbuf[b] = (unsigned char)((uint64_t)hlen >> (8 * b));
    const void **bufs = malloc(sizeof(void *) * (size_t)(n_tensors + 2));
    size_t *lens = malloc(sizeof(size_t) * (size_t)(n_tensors + 2));
    if (!bufs || !lens) {
        rc = err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    } else {
        bufs[0] = lenbuf, lens[0] = 8;
        bufs[1] = hdr, lens[1] = hlen;
        for (int i = 0; i < n_tensors; i++) {
            bufs[2 + i] = tensors[i].data;
            lens[2 + i] = tensors[i].numel * 4;
        }
        rc = fs_write_atomic_parts(path, n_tensors + 2, bufs, lens, err);
    }
    free(bufs);
    free(lens);
    free(hdr);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */

/* Byte range of one tensor in the data area, for the overlap check. */
typedef struct {
    uint64_t begin, end;
    int idx;
} Span;

/* Parses a JSON number that must be a non-negative integer < 2^53.
 * Returns 0, or 1 = not a number/integer, 2 = negative, 3 = too large. */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 1;
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d)) return 1;
    if (d < 0) return 2;
    if (d > ST_MAX_EXACT) return 3;
    *out = (uint64_t)d;
    return 0;
}

static const char *const uint_problem[] = {"", "is not an integer", "is negative", "is too large"};

/* Validates the shape array and fills t->ndim, t->shape, t->numel. */
static int parse_shape(const char *path, const char *nm, const cJSON *shape,
                       StTensor *t, Err *err) {
    if (!shape)
        return err_set(err, ERR_RUNTIME, "%s: tensor '%s': missing shape", path, nm);
    if (!cJSON_IsArray(shape))
        return err_set(err, ERR_RUNTIME, "%s: tensor '%s': shape is not an array", path, nm);
    int nd = cJSON_GetArraySize(shape);
    if (nd > ST_MAX_DIMS)
        return err_set(err, ERR_RUNTIME, "%s: tensor '%s': shape has %d dims (too many dims, max %d)",
                       path, nm, nd, ST_MAX_DIMS);
    int d = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, shape) {
        uint64_t u = 0;
        int bad = json_uint(v, &u);
        if (bad)
            return err_set(err, ERR_RUNTIME, "%s: tensor '%s': shape[%d] %s",
                           path, nm, d, uint_problem[bad]);
        t->shape[d++] = (int64_t)u;
    }
    t->ndim = nd;
    int ok;
    uint64_t numel = shape_numel(t->shape, nd, &ok);
    if (!ok || numel > SIZE_MAX / 4)
        return err_set(err, ERR_RUNTIME, "%s: tensor '%s': shape is too large", path, nm);
    t->numel = (size_t)numel;
    return 0;
}

/* Bytes per element of a supported dtype, 0 for any other. */
static size_t dtype_size(const char *dtype) {
    if (!strcmp(dtype, "F32")) return 4;
    if (!strcmp(dtype, "F16") || !strcmp(dtype, "BF16")) return 2;
    return 0;
}

/* IEEE 754 binary16 -> float, exact (normals, subnormals, inf, NaN). */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v;
    if (e == 0)
        v = ldexpf((float)m, -24);                 /* zero and subnormals: m * 2^-24 */
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexpf((float)(m | 0x400), (int)e - 25);   /* 1.m * 2^(e-15) */
    uint32_t bits;
    memcpy(&bits, &v, 4);
    bits |= sign;
    memcpy(&v, &bits, 4);
    return v;
}

/* Widens n elements of dtype (2-byte F16 or BF16) in raw to float in out. */
static void widen(float *out, const unsigned char *raw, size_t n, const char *dtype) {
    int bf16 = !strcmp(dtype, "BF16");
    for (size_t i = 0; i < n; i++) {
        uint16_t h = (uint16_t)(raw[2 * i] | raw[2 * i + 1] << 8);   /* little-endian */
        if (bf16) {   /* bfloat16 is the top half of a float's bits */
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
        } else {
            out[i] = half_to_float(h);
        }
    }
}

/* Validates data_offsets against the shape and the data area size. */
static int parse_offsets(const char *path, const char *nm, const cJSON *offs,
                         const StTensor *t, uint64_t data_len, Span *sp, Err *err) {
    if (!offs)
        return err_set(err, ERR_RUNTIME, "%s: tensor '%s': missing data_offsets", path, nm);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return err_set(err, ERR_RUNTIME, "%s: tensor '%s': data_offsets is not an array of two integers",
                       path, nm);
    uint64_t be[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        int bad = json_uint(cJSON_GetArrayItem(offs, k), &be[k]);
        if (bad)
            return err_set(err, ERR_RUNTIME, "%s: tensor '%s': data_offsets[%d] %s",
                           path, nm, k, uint_problem[bad]);
    }
    if (be[1] < be[0])
        return err_set(err, ERR_RUNTIME,
                       "%s: tensor '%s': data_offsets end %" PRIu64 " is before begin %" PRIu64,
                       path, nm, be[1], be[0]);
    uint64_t esize = dtype_size(t->dtype);
    if (be[1] - be[0] != (uint64_t)t->numel * esize)
        return err_set(err, ERR_RUNTIME,
                       "%s: tensor '%s': size mismatch: data_offsets span %" PRIu64
                       " bytes but the shape needs %zu elements * %" PRIu64 " = %" PRIu64 " bytes",
                       path, nm, be[1] - be[0], t->numel, esize, (uint64_t)t->numel * esize);
    if (be[1] > data_len)
        return err_set(err, ERR_RUNTIME,
                       "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                       "] lie outside the data area (%" PRIu64 " bytes)",
                       path, nm, be[0], be[1], data_len);
    sp->begin = be[0];
    sp->end = be[1];
    return 0;
}

/* Parses one "name": {...} entry into t. */
static int parse_tensor(const char *path, const cJSON *e, uint64_t data_len,
                        StTensor *t, Span *sp, Err *err) {
    const char *nm = e->string;
    t->name = strdup(nm);
    if (!t->name) return err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    if (!cJSON_IsObject(e))
        return err_set(err, ERR_RUNTIME, "%s: tensor '%s': entry is not a JSON object", path, nm);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!dtype)
        return err_set(err, ERR_RUNTIME, "%s: tensor '%s': missing dtype", path, nm);
    if (!cJSON_IsString(dtype))
        return err_set(err, ERR_RUNTIME, "%s: tensor '%s': dtype is not a string", path, nm);
    if (!dtype_size(dtype->valuestring))
        return err_set(err, ERR_RUNTIME,
                       "%s: tensor '%s': unsupported dtype '%s' (F32, F16 and BF16 are supported)",
                       path, nm, dtype->valuestring);
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype->valuestring);
    int rc = parse_shape(path, nm, cJSON_GetObjectItemCaseSensitive(e, "shape"), t, err);
    if (rc) return rc;
    return parse_offsets(path, nm, cJSON_GetObjectItemCaseSensitive(e, "data_offsets"),
                         t, data_len, sp, err);
}

/* Copies the "__metadata__" object (string -> string) into out. */
static int parse_meta(const char *path, const cJSON *m, StFile *out, Err *err) {
    if (!cJSON_IsObject(m))
        return err_set(err, ERR_RUNTIME, "%s: __metadata__ is not a JSON object", path);
    int n = cJSON_GetArraySize(m);
    out->meta_keys = calloc((size_t)n + 1, sizeof(char *));
    out->meta_vals = calloc((size_t)n + 1, sizeof(char *));
    if (!out->meta_keys || !out->meta_vals)
        return err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        if (!cJSON_IsString(v))
            return err_set(err, ERR_RUNTIME, "%s: __metadata__ value for '%s' is not a string",
                           path, v->string);
        for (int j = 0; j < out->n_meta; j++)
            if (strcmp(out->meta_keys[j], v->string) == 0)
                return err_set(err, ERR_RUNTIME, "%s: duplicate __metadata__ key '%s'",
                               path, v->string);
        int i = out->n_meta;
        out->meta_keys[i] = strdup(v->string);
        out->meta_vals[i] = strdup(v->valuestring);
        out->n_meta++;   /* counted now so st_free releases partial entries */
        if (!out->meta_keys[i] || !out->meta_vals[i])
            return err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    }
    return 0;
}

static int cmp_span(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

typedef struct {
    const char *name;
} NameRef;

/* Sorted by offset, each tensor starts where the previous one ended (the
 * first at 0) and the last ends at the end of the file. */
static int check_tiling(const char *path, const StFile *f, Span *sp, int n, uint64_t data_len,
                        Err *err) {
    qsort(sp, (size_t)n, sizeof *sp, cmp_span);
    uint64_t at = 0;
    const char *prev = NULL;
    for (int i = 0; i < n; i++) {
        const char *nm = f->tensors[sp[i].idx].name;
        if (sp[i].begin > at)
            return err_set(err, ERR_RUNTIME, "%s: gap of %" PRIu64 " bytes in the data area before "
                           "tensor '%s' (bytes [%" PRIu64 ", %" PRIu64 ") belong to no tensor)",
                           path, sp[i].begin - at, nm, at, sp[i].begin);
        if (sp[i].begin < at)
            return err_set(err, ERR_RUNTIME, "%s: tensors '%s' and '%s' overlap in the data area",
                           path, prev, nm);
        if (sp[i].end > sp[i].begin) prev = nm;
        at = sp[i].end;
    }
    if (at != data_len)
        return err_set(err, ERR_RUNTIME, "%s: %" PRIu64 " trailing bytes after the last tensor "
                       "(the tensors cover %" PRIu64 " of the %" PRIu64 " data bytes)", path,
                       data_len - at, at, data_len);
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const NameRef *)a)->name, ((const NameRef *)b)->name);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if the
 * bytes there are not one (overlong forms, surrogates and code points above
 * U+10FFFF are invalid; RFC 3629). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (!len || c > 0xF4 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0;   /* overlong */
    if (c == 0xED && s[1] >= 0xA0) return 0;  /* UTF-16 surrogate */
    if (c == 0xF0 && s[1] < 0x90) return 0;   /* overlong */
    if (c == 0xF4 && s[1] >= 0x90) return 0;  /* above U+10FFFF */
    return len;
}

/* The header's bytes, before cJSON (which is lenient) sees them: valid UTF-8,
 * only JSON whitespace (space, tab, LF, CR) outside strings (so no byte-order
 * mark or control byte around the object), no raw control byte inside a
 * string, no \u0000 escape (it would cut a name short), and the object
 * starts the text after optional whitespace. */
static int check_header_text(const char *path, const char *hdr, size_t hlen, Err *err) {
    const unsigned char *h = (const unsigned char *)hdr;
    int in_str = 0, esc = 0, seen_open = 0;
    for (size_t i = 0; i < hlen;) {
        unsigned c = h[i];
        size_t len = utf8_seq(h + i, hlen - i);
        if (!len)
            return err_set(err, ERR_RUNTIME, "%s: header is not valid UTF-8 (byte 0x%02x at byte %zu "
                           "of the header)", path, c, i);
        if (in_str) {
            if (esc) {
                esc = 0;
                if (c == 'u' && hlen - i >= 5 && !memcmp(h + i + 1, "0000", 4))
                    return err_set(err, ERR_RUNTIME, "%s: header has a \\u0000 escape in a string "
                                   "(byte %zu of the header)", path, i - 1);
            } else if (c == '\\') esc = 1;
            else if (c == '"') in_str = 0;
            else if (c < 0x20)
                return err_set(err, ERR_RUNTIME, "%s: header is not valid JSON (control byte 0x%02x "
                               "inside a string at byte %zu of the header)", path, c, i);
        } else if (c == '"') {
            in_str = 1;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            if (!seen_open && c != '{' && c >= 0x20 && c < 0x80)
                return err_set(err, ERR_RUNTIME, "%s: header is not a JSON object (it starts with "
                               "'%c' at byte %zu)", path, (char)c, i);
            if (c < 0x20 || c >= 0x80)
                return err_set(err, ERR_RUNTIME, "%s: header is not valid JSON (byte 0x%02x at byte "
                               "%zu of the header; the header must be a JSON object with only "
                               "JSON whitespace around it)", path, c, i);
            seen_open = 1;
        }
        i += len;
    }
    return 0;
}

/* Rejects duplicate names, and byte ranges that, sorted, do not tile the
 * data area exactly: a gap before a tensor, an overlap, or bytes after the
 * last one (the format's rule: offsets cover the whole buffer, no hole). */
static int check_layout(const char *path, const StFile *f, Span *sp, uint64_t data_len, Err *err) {
    int n = f->n_tensors;
    if (n < 2) return check_tiling(path, f, sp, n, data_len, err);
    NameRef *names = malloc((size_t)n * sizeof *names);
    if (!names) return err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    for (int i = 0; i < n; i++) names[i].name = f->tensors[i].name;
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1].name, names[i].name) == 0) {
            int rc = err_set(err, ERR_RUNTIME, "%s: duplicate tensor name '%s'", path, names[i].name);
            free(names);
            return rc;
        }
    free(names);

    return check_tiling(path, f, sp, n, data_len, err);
}

/* Parses and validates the whole header into out (no data yet); sp gets
 * each tensor's byte range. */
static int parse_header(const char *path, const char *hdr, size_t hlen,
                        uint64_t data_len, StFile *out, Span **sp, Err *err) {
    int rc0 = check_header_text(path, hdr, hlen, err);
    if (rc0) return rc0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
        return err_set(err, ERR_RUNTIME, "%s: header is not valid JSON (error near byte %zu of the header)",
                       path, at);
    }
    int rc = 0;
    for (const char *c = end; c < hdr + hlen; c++)
        if (*c != ' ' && *c != '\t' && *c != '\n' && *c != '\r') {
            rc = err_set(err, ERR_RUNTIME, "%s: header is not valid JSON (trailing data at byte %zu of the header)",
                         path, (size_t)(c - hdr));
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        rc = err_set(err, ERR_RUNTIME, "%s: header is not a JSON object", path);
        goto done;
    }
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
        if (strcmp(e->string, META_KEY) != 0) n++;
    out->tensors = calloc((size_t)n + 1, sizeof(StTensor));
    *sp = calloc((size_t)n + 1, sizeof(Span));
    if (!out->tensors || !*sp) {
        rc = err_set(err, ERR_RUNTIME, "%s: out of memory", path);
        goto done;
    }
    int seen_meta = 0;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, META_KEY) == 0) {
            if (seen_meta++) {
                rc = err_set(err, ERR_RUNTIME, "%s: duplicate __metadata__ entry", path);
                goto done;
            }
            if ((rc = parse_meta(path, e, out, err))) goto done;
            continue;
        }
        int i = out->n_tensors++;   /* counted now so st_free releases it */
        (*sp)[i].idx = i;
        if ((rc = parse_tensor(path, e, data_len, &out->tensors[i], &(*sp)[i], err))) goto done;
    }
    rc = check_layout(path, out, *sp, data_len, err);
done:
    cJSON_Delete(root);
    return rc;
}

/* Allocates and reads every tensor's data; data_start = 8 + header length. */
static int read_data(const char *path, int fd, uint64_t data_start, StFile *f,
                     const Span *sp, Err *err) {
    for (int k = 0; k < f->n_tensors; k++) {
        StTensor *t = &f->tensors[sp[k].idx];
        size_t bytes = t->numel * dtype_size(t->dtype);
        t->data = malloc(t->numel ? t->numel * sizeof(float) : sizeof(float));
        if (!t->data)
            return err_set(err, ERR_RUNTIME, "%s: out of memory for tensor '%s' (%zu bytes)",
                           path, t->name, t->numel * sizeof(float));
        if (bytes == 0) continue;
        /* 2-byte dtypes are read into the upper half of the buffer and widened
         * in place from the front (element i's float never overtakes the
         * half-width element i + 1 still to be read). */
        int narrow = bytes < t->numel * sizeof(float);
        unsigned char *dst = (unsigned char *)t->data + (narrow ? t->numel * sizeof(float) - bytes : 0);
        int r = pread_all(fd, dst, bytes, data_start + sp[k].begin);
        if (r < 0)
            return err_set(err, ERR_RUNTIME, "%s: read error in tensor '%s': %s",
                           path, t->name, strerror(errno));
        if (r > 0)
            return err_set(err, ERR_RUNTIME, "%s: file is shorter than expected (tensor '%s')",
                           path, t->name);
        if (narrow) widen(t->data, dst, t->numel, t->dtype);
    }
    return 0;
}

int st_read(const char *path, StFile *out, Err *err) {
    if (!out) return err_set(err, ERR_RUNTIME, "st_read: no output given");
    memset(out, 0, sizeof *out);
    if (!path) return err_set(err, ERR_RUNTIME, "st_read: no path given");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(err, ERR_RUNTIME, "%s: cannot open: %s", path, strerror(errno));

    int rc = 0;
    char *hdr = NULL;
    Span *sp = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = err_set(err, ERR_RUNTIME, "%s: cannot stat: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = err_set(err, ERR_RUNTIME, "%s: not a regular file", path);
        goto out;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    unsigned char lenbuf[8];
    if (fsize < 8 || pread_all(fd, lenbuf, 8, 0) != 0) {
        rc = err_set(err, ERR_RUNTIME, "%s: file too short (%" PRIu64
                     " bytes) to hold the 8-byte header length", path, fsize);
        goto out;
    }
    uint64_t hlen = 0;
    for (int b = 0; b < 8; b++) hlen |= (uint64_t)lenbuf[b] << (8 * b);
    if (hlen > ST_MAX_HEADER) {
        rc = err_set(err, ERR_RUNTIME, "%s: header length %" PRIu64 " is absurd (more than 100 MB)",
                     path, hlen);
        goto out;
    }
    if (hlen > fsize - 8) {
        rc = err_set(err, ERR_RUNTIME, "%s: header length %" PRIu64
                     " is larger than the file (%" PRIu64 " bytes)", path, hlen, fsize);
        goto out;
    }
    hdr = malloc((size_t)hlen + 1);
    if (!hdr) {
        rc = err_set(err, ERR_RUNTIME, "%s: out of memory for the header", path);
        goto out;
    }
    if (pread_all(fd, hdr, (size_t)hlen, 8) != 0) {
        rc = err_set(err, ERR_RUNTIME, "%s: cannot read the header", path);
        goto out;
    }
    hdr[hlen] = '\0';
    rc = parse_header(path, hdr, (size_t)hlen, fsize - 8 - hlen, out, &sp, err);
    if (!rc) rc = read_data(path, fd, 8 + hlen, out, sp, err);
out:
    if (rc) st_free(out);
    free(sp);
    free(hdr);
    close(fd);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Lookup and cleanup                                                  */

const StTensor *st_find(const StFile *f, const char *name) {
    if (!f || !name) return NULL;
    for (int i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].name && strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_meta(const StFile *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (f->meta_keys[i] && strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

void st_free(StFile *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) {
        free(f->tensors[i].name);
        free(f->tensors[i].data);
    }
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    memset(f, 0, sizeof *f);
}
