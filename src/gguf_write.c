/* gguf_write.c — the streaming GGUF v3 writer declared in gguf_write.h. */
#include "gguf_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probelogits.h"

#define ALIGN 32

typedef struct wtensor {
    uint64_t nbytes; /* data bytes */
    uint64_t offset; /* from the data section start */
} wtensor;

struct gguf_writer {
    FILE *fp;
    char *path;    /* owned copy, for removal on failure */
    uint8_t *meta; /* serialized key/values, owned */
    size_t meta_len, meta_cap;
    uint64_t n_kv;
    uint8_t *infos; /* serialized tensor infos, owned */
    size_t infos_len, infos_cap;
    wtensor *tensors; /* owned */
    uint64_t n_tensors, tensors_cap;
    uint64_t data_end; /* next free data offset (aligned) */
    uint64_t cur;      /* tensor being written */
    uint64_t cur_done; /* bytes of it written */
    bool header_done, finished, failed;
    pl_err *err; /* borrowed from create; must outlive the writer */
};

static int wfail(gguf_writer *w, int code, const char *msg) {
    w->failed = true;
    return pl_fail(w->err, code, "gguf writer: %s", msg);
}

static int put(gguf_writer *w, uint8_t **buf, size_t *len, size_t *cap, const void *p, size_t n) {
    if (*len + n > *cap) {
        size_t ncap = (*len + n) * 2 + 256;
        uint8_t *nb = realloc(*buf, ncap);
        if (!nb) return wfail(w, PL_ERR_NOMEM, "out of memory");
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    return PL_OK;
}
static int meta(gguf_writer *w, const void *p, size_t n) { return put(w, &w->meta, &w->meta_len, &w->meta_cap, p, n); }
static int meta_u32(gguf_writer *w, uint32_t v) { return meta(w, &v, 4); }
static int meta_u64(gguf_writer *w, uint64_t v) { return meta(w, &v, 8); }
static int meta_str(gguf_writer *w, const char *s, size_t n) {
    int rc = meta_u64(w, n);
    return rc ? rc : meta(w, s, n);
}

int gguf_writer_create(const char *path, gguf_writer **out, pl_err *err) {
    *out = NULL;
    gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    w->err = err;
    w->path = strdup(path);
    w->fp = fopen(path, "wb");
    if (!w->path || !w->fp) {
        int rc = pl_fail(err, PL_ERR_IO, "cannot create %s: %s", path, strerror(errno));
        if (w->fp) fclose(w->fp);
        free(w->path);
        free(w);
        return rc;
    }
    *out = w;
    return PL_OK;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    if (w->fp) fclose(w->fp);
    if (!w->finished && w->path) unlink(w->path);
    free(w->path);
    free(w->meta);
    free(w->infos);
    free(w->tensors);
    free(w);
}

static int kv_begin(gguf_writer *w, const char *key, size_t key_len, uint32_t type) {
    if (w->header_done) return wfail(w, PL_ERR_STATE, "metadata added after the header");
    int rc = meta_str(w, key, key_len);
    if (!rc) rc = meta_u32(w, type);
    if (!rc) w->n_kv++;
    return rc;
}

int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v) {
    int rc = kv_begin(w, key, strlen(key), GGUF_U32);
    return rc ? rc : meta_u32(w, v);
}
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v) {
    int rc = kv_begin(w, key, strlen(key), GGUF_F32);
    return rc ? rc : meta(w, &v, 4);
}
int gguf_writer_add_bool(gguf_writer *w, const char *key, bool v) {
    const uint8_t b = v;
    int rc = kv_begin(w, key, strlen(key), GGUF_BOOL);
    return rc ? rc : meta(w, &b, 1);
}
int gguf_writer_add_str(gguf_writer *w, const char *key, const char *v, size_t len) {
    int rc = kv_begin(w, key, strlen(key), GGUF_STRING);
    return rc ? rc : meta_str(w, v, len);
}

static const uint8_t scalar_size[GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* Re-encodes one scalar from the reader's widened value. */
static int put_scalar(gguf_writer *w, uint32_t type, uint64_t u, int64_t i, double f) {
    uint8_t b[8];
    switch (type) {
    case GGUF_F32: {
        float x = (float)f;
        memcpy(b, &x, 4);
        break;
    }
    case GGUF_F64: memcpy(b, &f, 8); break;
    case GGUF_I8:
    case GGUF_I16:
    case GGUF_I32:
    case GGUF_I64: memcpy(b, &i, 8); break;
    default: memcpy(b, &u, 8); break;
    }
    return meta(w, b, scalar_size[type]);
}

int gguf_writer_add_kv(gguf_writer *w, const gguf_kv *kv) {
    int rc = kv_begin(w, kv->key.ptr, (size_t)kv->key.len, kv->type);
    if (rc) return rc;
    if (kv->type == GGUF_STRING) return meta_str(w, kv->v.str.ptr, (size_t)kv->v.str.len);
    if (kv->type != GGUF_ARRAY) return put_scalar(w, kv->type, kv->v.u64, kv->v.i64, kv->v.f64);
    if ((rc = meta_u32(w, kv->arr_type)) || (rc = meta_u64(w, kv->arr_n))) return rc;
    if (kv->arr_type == GGUF_STRING) {
        for (uint64_t j = 0; j < kv->arr_n && !rc; j++) rc = meta_str(w, kv->arr_strs[j].ptr, kv->arr_strs[j].len);
        return rc;
    }
    return meta(w, kv->arr_data, (size_t)kv->arr_n * scalar_size[kv->arr_type]);
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type) {
    if (w->header_done) return wfail(w, PL_ERR_STATE, "tensor added after the header");
    const uint32_t blck = ggml_blck_size(type);
    if (blck == 0 || n_dims < 1 || n_dims > 4 || ne[0] % blck) return wfail(w, PL_ERR_ARG, "bad tensor shape or type");
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++)
        if (ne[d] <= 0 || !pl_mul_u64_ok(n, (uint64_t)ne[d], &n)) return wfail(w, PL_ERR_ARG, "bad tensor shape");
    uint64_t nbytes;
    if (!pl_mul_u64_ok(n / blck, ggml_type_size(type), &nbytes)) return wfail(w, PL_ERR_ARG, "tensor too large");
    if (w->n_tensors == w->tensors_cap) {
        uint64_t ncap = w->tensors_cap * 2 + 16;
        wtensor *nt = realloc(w->tensors, (size_t)ncap * sizeof *nt);
        if (!nt) return wfail(w, PL_ERR_NOMEM, "out of memory");
        w->tensors = nt;
        w->tensors_cap = ncap;
    }
    w->tensors[w->n_tensors++] = (wtensor){nbytes, w->data_end};
    w->data_end = (w->data_end + nbytes + ALIGN - 1) / ALIGN * ALIGN;
    uint64_t len = strlen(name);
    int rc = put(w, &w->infos, &w->infos_len, &w->infos_cap, &len, 8);
    if (!rc) rc = put(w, &w->infos, &w->infos_len, &w->infos_cap, name, (size_t)len);
    if (!rc) rc = put(w, &w->infos, &w->infos_len, &w->infos_cap, &n_dims, 4);
    for (uint32_t d = 0; d < n_dims && !rc; d++) rc = put(w, &w->infos, &w->infos_len, &w->infos_cap, &ne[d], 8);
    if (!rc) rc = put(w, &w->infos, &w->infos_len, &w->infos_cap, &type, 4);
    if (!rc) rc = put(w, &w->infos, &w->infos_len, &w->infos_cap, &w->tensors[w->n_tensors - 1].offset, 8);
    return rc;
}

static int write_all(gguf_writer *w, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, w->fp) != n) return wfail(w, PL_ERR_IO, "write failed");
    return PL_OK;
}

static int write_zeros(gguf_writer *w, size_t n) {
    static const uint8_t zeros[ALIGN];
    return write_all(w, zeros, n);
}

int gguf_writer_write_header(gguf_writer *w) {
    if (w->header_done || w->failed) return wfail(w, PL_ERR_STATE, "header written twice or after an error");
    const uint32_t magic_version[2] = {0x46554747u, 3};
    const uint64_t counts[2] = {w->n_tensors, w->n_kv};
    int rc;
    if ((rc = write_all(w, magic_version, 8)) || (rc = write_all(w, counts, 16)) ||
        (rc = write_all(w, w->meta, w->meta_len)) || (rc = write_all(w, w->infos, w->infos_len)))
        return rc;
    const size_t hdr = 24 + w->meta_len + w->infos_len;
    w->header_done = true;
    return write_zeros(w, (ALIGN - hdr % ALIGN) % ALIGN);
}

int gguf_writer_write_data(gguf_writer *w, const void *data, size_t n) {
    if (!w->header_done || w->failed) return wfail(w, PL_ERR_STATE, "data before the header or after an error");
    const uint8_t *p = data;
    while (n > 0) {
        if (w->cur >= w->n_tensors) return wfail(w, PL_ERR_RANGE, "more data than declared");
        const wtensor *t = &w->tensors[w->cur];
        const size_t take = (size_t)(t->nbytes - w->cur_done) < n ? (size_t)(t->nbytes - w->cur_done) : n;
        int rc = write_all(w, p, take);
        if (rc) return rc;
        p += take, n -= take, w->cur_done += take;
        if (w->cur_done == t->nbytes) {
            if ((rc = write_zeros(w, (size_t)((ALIGN - t->nbytes % ALIGN) % ALIGN)))) return rc;
            w->cur++, w->cur_done = 0;
        }
    }
    return PL_OK;
}

int gguf_writer_finish(gguf_writer *w) {
    if (!w->header_done || w->failed || w->cur != w->n_tensors)
        return wfail(w, PL_ERR_STATE, "finished before all declared tensor data was written");
    FILE *fp = w->fp;
    w->fp = NULL;
    if (fclose(fp) != 0) return wfail(w, PL_ERR_IO, "close failed");
    w->finished = true;
    return PL_OK;
}
