/* gguf.c — GGUF v2/v3 reader (format in gguf.h).
 *
 * The whole header is parsed and validated once at open, through a cursor
 * that never reads past the end of the buffer. Limits below bound every
 * count taken from the file before anything is allocated from it. */
#include "gguf.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "probelogits.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_STRING (1u << 30) /* bytes in one string */
#define GGUF_MAX_KEY 65535u        /* bytes in one key */
#define GGUF_MAX_DIMS 4

struct gguf_file {
    const uint8_t *base; /* start of the file bytes (mapping or caller buffer) */
    size_t size;         /* bytes */
    bool mapped;         /* base is an mmap to unmap at close */
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kvs; /* n_kv entries, owned */
    uint64_t n_tensors;
    gguf_tensor *tensors; /* n_tensors entries, owned (names owned too) */
    uint32_t alignment;   /* general.alignment or 32 */
    uint64_t data_offset; /* file offset of the data section */
    uint64_t identity;    /* FNV-1a of size + header bytes */
};

/* Bounds-checked reading cursor. */
typedef struct cursor {
    const uint8_t *p;
    size_t size;
    size_t off;
    pl_err *err;
    bool nomem; /* the failure was an allocation, not the file */
} cursor;

static const struct {
    const char *name;
    uint32_t blck, size;
} type_info[GGML_TYPE_COUNT] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},         [2] = {"Q4_0", 32, 18},      [3] = {"Q4_1", 32, 20},
    [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},      [8] = {"Q8_0", 32, 34},      [9] = {"Q8_1", 32, 36},
    [10] = {"Q2_K", 256, 84},    [11] = {"Q3_K", 256, 110},   [12] = {"Q4_K", 256, 144},   [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292},   [16] = {"IQ2_XXS", 256, 66}, [17] = {"IQ2_XS", 256, 74},
    [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},   [20] = {"IQ4_NL", 32, 18},   [21] = {"IQ3_S", 256, 110},
    [22] = {"IQ2_S", 256, 82},   [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},         [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},        [28] = {"F64", 1, 8},        [29] = {"IQ1_M", 256, 56},
    [30] = {"BF16", 1, 2},       [34] = {"TQ1_0", 256, 54},   [35] = {"TQ2_0", 256, 66},   [39] = {"MXFP4", 32, 17},
};

const char *ggml_type_name(uint32_t type) {
    return type < GGML_TYPE_COUNT && type_info[type].name ? type_info[type].name : "?";
}
uint32_t ggml_blck_size(uint32_t type) { return type < GGML_TYPE_COUNT ? type_info[type].blck : 0; }
uint32_t ggml_type_size(uint32_t type) { return type < GGML_TYPE_COUNT ? type_info[type].size : 0; }

static const char *const vtype_names[GGUF_VTYPE_COUNT] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                                          "bool", "string", "array", "u64", "i64", "f64"};
static const uint8_t vtype_sizes[GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *gguf_vtype_name(uint32_t vtype) { return vtype < GGUF_VTYPE_COUNT ? vtype_names[vtype] : "?"; }

static bool cur_need(cursor *c, size_t n, const char *what) {
    if (n > c->size - c->off) {
        pl_fail(c->err, PL_ERR_FORMAT, "GGUF truncated: %s needs %zu bytes at offset %zu, file has %zu", what, n,
                c->off, c->size);
        return false;
    }
    return true;
}
static bool cur_u32(cursor *c, uint32_t *v, const char *what) {
    if (!cur_need(c, 4, what)) return false;
    *v = pl_load_u32(c->p + c->off);
    c->off += 4;
    return true;
}
static bool cur_u64(cursor *c, uint64_t *v, const char *what) {
    if (!cur_need(c, 8, what)) return false;
    *v = pl_load_u64(c->p + c->off);
    c->off += 8;
    return true;
}
static bool cur_str(cursor *c, gguf_str *s, uint64_t max, const char *what) {
    uint64_t len;
    if (!cur_u64(c, &len, what)) return false;
    if (len > max) {
        pl_fail(c->err, PL_ERR_FORMAT, "GGUF %s: string length %llu exceeds limit %llu", what, (unsigned long long)len,
                (unsigned long long)max);
        return false;
    }
    if (!cur_need(c, (size_t)len, what)) return false;
    s->ptr = (const char *)c->p + c->off;
    s->len = len;
    c->off += (size_t)len;
    return true;
}

/* Reads one scalar of type vt into kv->v. */
static bool read_scalar(cursor *c, uint32_t vt, gguf_kv *kv, const char *key) {
    const size_t n = vtype_sizes[vt];
    if (!cur_need(c, n, key)) return false;
    const uint8_t *p = c->p + c->off;
    switch (vt) {
    case GGUF_U8: kv->v.u64 = p[0]; break;
    case GGUF_I8: kv->v.i64 = (int8_t)p[0]; break;
    case GGUF_U16: kv->v.u64 = pl_load_u16(p); break;
    case GGUF_I16: kv->v.i64 = (int16_t)pl_load_u16(p); break;
    case GGUF_U32: kv->v.u64 = pl_load_u32(p); break;
    case GGUF_I32: kv->v.i64 = (int32_t)pl_load_u32(p); break;
    case GGUF_F32: kv->v.f64 = pl_load_f32(p); break;
    case GGUF_BOOL:
        if (p[0] > 1) {
            pl_fail(c->err, PL_ERR_FORMAT, "GGUF key %s: bool value %u is not 0 or 1", key, p[0]);
            return false;
        }
        kv->v.u64 = p[0];
        break;
    case GGUF_U64: kv->v.u64 = pl_load_u64(p); break;
    case GGUF_I64: kv->v.i64 = (int64_t)pl_load_u64(p); break;
    case GGUF_F64: {
        double d;
        memcpy(&d, p, 8);
        kv->v.f64 = d;
        break;
    }
    default: return false;
    }
    c->off += n;
    return true;
}

static bool read_kv(cursor *c, gguf_kv *kv) {
    if (!cur_str(c, &kv->key, GGUF_MAX_KEY, "metadata key")) return false;
    char key[96];
    snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 80 ? kv->key.len : 80), kv->key.ptr);
    if (kv->key.len == 0 || !pl_utf8_valid(kv->key.ptr, kv->key.len)) {
        pl_fail(c->err, PL_ERR_FORMAT, "GGUF metadata key at offset %zu is empty or not valid UTF-8", c->off);
        return false;
    }
    if (!cur_u32(c, &kv->type, key)) return false;
    if (kv->type >= GGUF_VTYPE_COUNT) {
        pl_fail(c->err, PL_ERR_FORMAT, "GGUF key %s: unknown value type %u", key, kv->type);
        return false;
    }
    if (kv->type == GGUF_STRING) return cur_str(c, &kv->v.str, GGUF_MAX_STRING, key);
    if (kv->type != GGUF_ARRAY) return read_scalar(c, kv->type, kv, key);

    if (!cur_u32(c, &kv->arr_type, key) || !cur_u64(c, &kv->arr_n, key)) return false;
    if (kv->arr_type >= GGUF_VTYPE_COUNT || kv->arr_type == GGUF_ARRAY) {
        pl_fail(c->err, PL_ERR_FORMAT, "GGUF key %s: unsupported array element type %u", key, kv->arr_type);
        return false;
    }
    if (kv->arr_type != GGUF_STRING) {
        uint64_t bytes;
        if (!pl_mul_u64_ok(kv->arr_n, vtype_sizes[kv->arr_type], &bytes) || bytes > c->size - c->off) {
            pl_fail(c->err, PL_ERR_FORMAT, "GGUF key %s: array of %llu %s elements runs past the end of the file", key,
                    (unsigned long long)kv->arr_n, vtype_names[kv->arr_type]);
            return false;
        }
        kv->arr_data = c->p + c->off;
        if (kv->arr_type == GGUF_BOOL)
            for (uint64_t i = 0; i < kv->arr_n; i++)
                if (kv->arr_data[i] > 1) {
                    pl_fail(c->err, PL_ERR_FORMAT, "GGUF key %s: bool element %llu is not 0 or 1", key,
                            (unsigned long long)i);
                    return false;
                }
        c->off += (size_t)bytes;
        return true;
    }
    /* String array: every element needs at least its 8-byte length, which
     * bounds the count by the bytes left before anything is allocated. */
    if (kv->arr_n > (c->size - c->off) / 8) {
        pl_fail(c->err, PL_ERR_FORMAT, "GGUF key %s: array of %llu strings cannot fit in the file", key,
                (unsigned long long)kv->arr_n);
        return false;
    }
    kv->arr_strs = calloc(kv->arr_n ? (size_t)kv->arr_n : 1, sizeof(gguf_str));
    if (!kv->arr_strs) {
        pl_fail(c->err, PL_ERR_NOMEM, "out of memory for %llu strings of %s", (unsigned long long)kv->arr_n, key);
        c->nomem = true;
        return false;
    }
    for (uint64_t i = 0; i < kv->arr_n; i++)
        if (!cur_str(c, &kv->arr_strs[i], GGUF_MAX_STRING, key)) return false;
    return true;
}

static int cmp_offset(const void *a, const void *b) {
    const gguf_tensor *ta = *(const gguf_tensor *const *)a, *tb = *(const gguf_tensor *const *)b;
    return ta->offset < tb->offset ? -1 : ta->offset > tb->offset;
}
static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const gguf_tensor *const *)a)->name, (*(const gguf_tensor *const *)b)->name);
}

static bool read_tensor_info(cursor *c, gguf_tensor *t, uint64_t index) {
    gguf_str name;
    if (!cur_str(c, &name, 65535, "tensor name")) return false;
    if (name.len == 0 || !pl_utf8_valid(name.ptr, name.len) || memchr(name.ptr, 0, name.len)) {
        pl_fail(c->err, PL_ERR_FORMAT, "GGUF tensor %llu: name is empty, contains NUL or is not valid UTF-8",
                (unsigned long long)index);
        return false;
    }
    t->name = malloc(name.len + 1);
    if (!t->name) {
        pl_fail(c->err, PL_ERR_NOMEM, "out of memory");
        c->nomem = true;
        return false;
    }
    memcpy(t->name, name.ptr, name.len);
    t->name[name.len] = '\0';
    if (!cur_u32(c, &t->n_dims, t->name)) return false;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS) {
        pl_fail(c->err, PL_ERR_FORMAT, "GGUF tensor %s: %u dimensions (1..4 allowed)", t->name, t->n_dims);
        return false;
    }
    uint64_t n_elems = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < t->n_dims && !cur_u64(c, &ne, t->name)) return false;
        if (ne == 0 || ne > (uint64_t)INT64_MAX || !pl_mul_u64_ok(n_elems, ne, &n_elems) ||
            n_elems > (uint64_t)INT64_MAX) {
            pl_fail(c->err, PL_ERR_FORMAT, "GGUF tensor %s: dimension %u = %llu is zero or too large", t->name, d,
                    (unsigned long long)ne);
            return false;
        }
        t->ne[d] = (int64_t)ne;
    }
    if (!cur_u32(c, &t->type, t->name) || !cur_u64(c, &t->offset, t->name)) return false;
    const uint32_t blck = ggml_blck_size(t->type);
    if (blck == 0) {
        pl_fail(c->err, PL_ERR_FORMAT, "GGUF tensor %s: unknown tensor type %u", t->name, t->type);
        return false;
    }
    if (t->ne[0] % blck != 0) {
        pl_fail(c->err, PL_ERR_FORMAT, "GGUF tensor %s: row length %lld is not a multiple of the %s block size %u",
                t->name, (long long)t->ne[0], ggml_type_name(t->type), blck);
        return false;
    }
    uint64_t bytes;
    if (!pl_mul_u64_ok(n_elems / blck, ggml_type_size(t->type), &bytes)) {
        pl_fail(c->err, PL_ERR_FORMAT, "GGUF tensor %s: byte size overflows", t->name);
        return false;
    }
    t->nbytes = bytes;
    return true;
}

static int parse(gguf_file *f, pl_err *err) {
    cursor c = {f->base, f->size, 0, err, false};
    uint32_t magic;
    if (!cur_u32(&c, &magic, "magic")) return PL_ERR_FORMAT;
    if (magic != GGUF_MAGIC) return pl_fail(err, PL_ERR_FORMAT, "not a GGUF file (bad magic 0x%08x)", magic);
    if (!cur_u32(&c, &f->version, "version")) return PL_ERR_FORMAT;
    if (f->version != 2 && f->version != 3)
        return pl_fail(err, PL_ERR_UNSUPPORTED, "GGUF version %u is not supported (2 and 3 are)", f->version);
    if (!cur_u64(&c, &f->n_tensors, "tensor count") || !cur_u64(&c, &f->n_kv, "metadata count")) return PL_ERR_FORMAT;
    /* A key/value needs >= 8+1+4+1 bytes and a tensor info >= 8+1+4+8+4+8. */
    if (f->n_kv > (f->size - c.off) / 14)
        return pl_fail(err, PL_ERR_FORMAT, "GGUF metadata count %llu cannot fit in a %zu-byte file",
                       (unsigned long long)f->n_kv, f->size);
    if (f->n_tensors > (f->size - c.off) / 33)
        return pl_fail(err, PL_ERR_FORMAT, "GGUF tensor count %llu cannot fit in a %zu-byte file",
                       (unsigned long long)f->n_tensors, f->size);

    f->kvs = calloc(f->n_kv ? (size_t)f->n_kv : 1, sizeof(gguf_kv));
    if (!f->kvs) return pl_fail(err, PL_ERR_NOMEM, "out of memory for metadata");
    for (uint64_t i = 0; i < f->n_kv; i++) {
        if (!read_kv(&c, &f->kvs[i])) {
            f->n_kv = i + 1; /* so close frees what was allocated */
            return c.nomem ? PL_ERR_NOMEM : PL_ERR_FORMAT;
        }
        for (uint64_t j = 0; j < i; j++)
            if (f->kvs[j].key.len == f->kvs[i].key.len &&
                memcmp(f->kvs[j].key.ptr, f->kvs[i].key.ptr, f->kvs[i].key.len) == 0)
                return pl_fail(err, PL_ERR_FORMAT, "GGUF metadata key %.*s appears twice", (int)f->kvs[i].key.len,
                               f->kvs[i].key.ptr);
    }

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *al = gguf_find(f, "general.alignment");
    if (al) {
        if (al->type != GGUF_U32 || al->v.u64 == 0 || al->v.u64 > (1u << 20) || (al->v.u64 & (al->v.u64 - 1)))
            return pl_fail(err, PL_ERR_FORMAT, "GGUF general.alignment must be a u32 power of two (<= 1 MiB)");
        f->alignment = (uint32_t)al->v.u64;
    }

    f->tensors = calloc(f->n_tensors ? (size_t)f->n_tensors : 1, sizeof(gguf_tensor));
    if (!f->tensors) return pl_fail(err, PL_ERR_NOMEM, "out of memory for tensor infos");
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (!read_tensor_info(&c, &f->tensors[i], i)) {
            f->n_tensors = i + 1;
            return c.nomem ? PL_ERR_NOMEM : PL_ERR_FORMAT;
        }

    /* Data section starts at the next multiple of the alignment. */
    uint64_t data_off = ((uint64_t)c.off + f->alignment - 1) / f->alignment * f->alignment;
    if (f->n_tensors > 0 && data_off > f->size)
        return pl_fail(err, PL_ERR_FORMAT, "GGUF data section offset %llu is past the end of the file (%zu bytes)",
                       (unsigned long long)data_off, f->size);
    f->data_offset = data_off;
    const uint64_t data_size = f->n_tensors > 0 ? f->size - data_off : 0;

    if (f->n_tensors == 0) goto identity;
    gguf_tensor **order = malloc((size_t)f->n_tensors * sizeof *order);
    if (!order) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    int rc = PL_OK;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        uint64_t end;
        if (t->offset % f->alignment != 0) {
            rc = pl_fail(err, PL_ERR_FORMAT, "GGUF tensor %s: offset %llu is not aligned to %u", t->name,
                         (unsigned long long)t->offset, f->alignment);
            goto done;
        }
        if (!pl_add_u64_ok(t->offset, t->nbytes, &end) || end > data_size) {
            rc = pl_fail(err, PL_ERR_FORMAT, "GGUF tensor %s: data [%llu, +%llu) runs past the end of the file",
                         t->name, (unsigned long long)t->offset, (unsigned long long)t->nbytes);
            goto done;
        }
        t->data = f->base + data_off + t->offset;
        order[i] = t;
    }
    qsort(order, (size_t)f->n_tensors, sizeof *order, cmp_offset);
    for (uint64_t i = 1; i < f->n_tensors; i++)
        if (order[i - 1]->offset + order[i - 1]->nbytes > order[i]->offset) {
            rc = pl_fail(err, PL_ERR_FORMAT, "GGUF tensors %s and %s overlap", order[i - 1]->name, order[i]->name);
            goto done;
        }
    qsort(order, (size_t)f->n_tensors, sizeof *order, cmp_name);
    for (uint64_t i = 1; i < f->n_tensors; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            rc = pl_fail(err, PL_ERR_FORMAT, "GGUF tensor name %s appears twice", order[i]->name);
            goto done;
        }
done:
    free(order);
    if (rc) return rc;
identity:;
    /* FNV-1a over the file size and the header bytes (metadata + tensor
     * infos): cheap, and changes whenever the model file does in practice. */
    uint64_t h = 1469598103934665603ull;
    const uint64_t sz = f->size;
    for (int i = 0; i < 8; i++) h = (h ^ ((sz >> (8 * i)) & 0xff)) * 1099511628211ull;
    for (size_t i = 0; i < c.off; i++) h = (h ^ f->base[i]) * 1099511628211ull;
    f->identity = h;
    return PL_OK;
}

static int open_common(gguf_file *f, gguf_file **out, pl_err *err) {
    int rc = parse(f, err);
    if (rc != PL_OK) {
        gguf_close(f);
        return rc;
    }
    *out = f;
    return PL_OK;
}

int gguf_open_memory(const void *data, size_t size, gguf_file **out, pl_err *err) {
    *out = NULL;
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    f->base = data;
    f->size = size;
    return open_common(f, out, err);
}

int gguf_open(const char *path, gguf_file **out, pl_err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pl_fail(err, PL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return pl_fail(err, PL_ERR_IO, "%s is not a regular file", path);
    }
    if (st.st_size < 24) {
        close(fd);
        return pl_fail(err, PL_ERR_FORMAT, "%s: %lld bytes is too small for a GGUF header", path,
                       (long long)st.st_size);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return pl_fail(err, PL_ERR_IO, "cannot map %s: %s", path, strerror(errno));
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) {
        munmap(map, (size_t)st.st_size);
        return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    }
    f->base = map;
    f->size = (size_t)st.st_size;
    f->mapped = true;
    return open_common(f, out, err);
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->kvs)
        for (uint64_t i = 0; i < f->n_kv; i++) free(f->kvs[i].arr_strs);
    if (f->tensors)
        for (uint64_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->kvs);
    free(f->tensors);
    if (f->mapped) munmap((void *)f->base, f->size);
    free(f);
}

bool gguf_is_mapped(const gguf_file *f) { return f && f->mapped; }
uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint64_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }
const gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i) { return i < f->n_kv ? &f->kvs[i] : NULL; }
uint64_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }
const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i) { return i < f->n_tensors ? &f->tensors[i] : NULL; }
uint64_t gguf_identity(const gguf_file *f) { return f->identity; }
size_t gguf_file_size(const gguf_file *f) { return f->size; }

const gguf_kv *gguf_find(const gguf_file *f, const char *key) {
    const size_t n = strlen(key);
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (f->kvs[i].key.len == n && memcmp(f->kvs[i].key.ptr, key, n) == 0) return &f->kvs[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

static bool is_uint(uint32_t t) { return t == GGUF_U8 || t == GGUF_U16 || t == GGUF_U32 || t == GGUF_U64; }
static bool is_sint(uint32_t t) { return t == GGUF_I8 || t == GGUF_I16 || t == GGUF_I32 || t == GGUF_I64; }

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, pl_err *err) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return PL_ERR_ARG;
    if (is_uint(kv->type) && kv->v.u64 <= UINT32_MAX)
        *out = (uint32_t)kv->v.u64;
    else if (is_sint(kv->type) && kv->v.i64 >= 0 && kv->v.i64 <= (int64_t)UINT32_MAX)
        *out = (uint32_t)kv->v.i64;
    else
        return pl_fail(err, PL_ERR_FORMAT, "GGUF key %s: expected an unsigned 32-bit integer", key);
    return PL_OK;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out, pl_err *err) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return PL_ERR_ARG;
    if (kv->type != GGUF_F32 && kv->type != GGUF_F64)
        return pl_fail(err, PL_ERR_FORMAT, "GGUF key %s: expected a float, found %s", key, gguf_vtype_name(kv->type));
    *out = (float)kv->v.f64;
    return PL_OK;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out, pl_err *err) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return PL_ERR_ARG;
    if (kv->type != GGUF_BOOL)
        return pl_fail(err, PL_ERR_FORMAT, "GGUF key %s: expected a bool, found %s", key, gguf_vtype_name(kv->type));
    *out = kv->v.u64 != 0;
    return PL_OK;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, pl_err *err) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return PL_ERR_ARG;
    if (kv->type != GGUF_STRING)
        return pl_fail(err, PL_ERR_FORMAT, "GGUF key %s: expected a string, found %s", key, gguf_vtype_name(kv->type));
    *out = kv->v.str;
    return PL_OK;
}

double gguf_arr_f64(const gguf_kv *kv, uint64_t i) {
    if (kv->type != GGUF_ARRAY || i >= kv->arr_n || kv->arr_type == GGUF_STRING) return 0.0;
    const uint8_t *p = kv->arr_data + i * vtype_sizes[kv->arr_type];
    switch (kv->arr_type) {
    case GGUF_F32: return pl_load_f32(p);
    case GGUF_F64: {
        double d;
        memcpy(&d, p, 8);
        return d;
    }
    case GGUF_U64: return (double)pl_load_u64(p);
    default: return (double)gguf_arr_i64(kv, i);
    }
}

/* Float to integer without undefined behaviour: NaN is 0, out-of-range
 * values saturate. */
static int64_t f64_to_i64(double d) {
    if (d != d) return 0;
    if (d >= 9.2233720368547758e18) return INT64_MAX;
    if (d <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)d;
}

int64_t gguf_arr_i64(const gguf_kv *kv, uint64_t i) {
    if (kv->type != GGUF_ARRAY || i >= kv->arr_n || kv->arr_type == GGUF_STRING) return 0;
    const uint8_t *p = kv->arr_data + i * vtype_sizes[kv->arr_type];
    switch (kv->arr_type) {
    case GGUF_U8:
    case GGUF_BOOL: return p[0];
    case GGUF_I8: return (int8_t)p[0];
    case GGUF_U16: return pl_load_u16(p);
    case GGUF_I16: return (int16_t)pl_load_u16(p);
    case GGUF_U32: return pl_load_u32(p);
    case GGUF_I32: return (int32_t)pl_load_u32(p);
    case GGUF_U64: return (int64_t)pl_load_u64(p);
    case GGUF_I64: return (int64_t)pl_load_u64(p);
    case GGUF_F32: return f64_to_i64(pl_load_f32(p));
    case GGUF_F64: {
        double d;
        memcpy(&d, p, 8);
        return f64_to_i64(d);
    }
    default: return 0;
    }
}
