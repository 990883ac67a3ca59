/* gguf_builder.h — builds small GGUF files in memory for tests: metadata of
 * every value type, tensor infos and data, with knobs to corrupt them. */
#ifndef PL_GGUF_BUILDER_H
#define PL_GGUF_BUILDER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct gb {
    uint8_t *buf; /* owned */
    size_t len, cap;
} gb;

static inline void gb_bytes(gb *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->buf = realloc(b->buf, b->cap);
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}
static inline void gb_u8(gb *b, uint8_t v) { gb_bytes(b, &v, 1); }
static inline void gb_u32(gb *b, uint32_t v) { gb_bytes(b, &v, 4); }
static inline void gb_u64(gb *b, uint64_t v) { gb_bytes(b, &v, 8); }
static inline void gb_f32(gb *b, float v) { gb_bytes(b, &v, 4); }
static inline void gb_str(gb *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_bytes(b, s, strlen(s));
}
static inline void gb_header(gb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    gb_bytes(b, "GGUF", 4);
    gb_u32(b, version);
    gb_u64(b, n_tensors);
    gb_u64(b, n_kv);
}
static inline void gb_kv_str(gb *b, const char *key, const char *val) {
    gb_str(b, key);
    gb_u32(b, 8);
    gb_str(b, val);
}
static inline void gb_kv_u32(gb *b, const char *key, uint32_t val) {
    gb_str(b, key);
    gb_u32(b, 4);
    gb_u32(b, val);
}
static inline void gb_kv_f32(gb *b, const char *key, float val) {
    gb_str(b, key);
    gb_u32(b, 6);
    gb_f32(b, val);
}
/* Tensor info: name, 2-D shape, type, offset. */
static inline void gb_tensor(gb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                             uint64_t off) {
    gb_str(b, name);
    gb_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) gb_u64(b, ne[i]);
    gb_u32(b, type);
    gb_u64(b, off);
}
static inline void gb_align(gb *b, size_t a) {
    while (b->len % a) gb_u8(b, 0);
}

#endif
