/* util.h — small shared helpers: error reporting into caller buffers,
 * overflow-checked size arithmetic, little-endian loads, file reading.
 * Everything here is internal to the library. */
#ifndef PL_UTIL_H
#define PL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Error buffer: a caller-owned char array that library functions fill with a
 * human-readable message when they return a negative status. */
typedef struct pl_err {
    char *buf;  /* caller-owned, may be NULL (messages are then dropped) */
    size_t cap; /* bytes available in buf, including the terminating NUL */
} pl_err;

/* Formats a message into err (if any) and returns code, so callers can write
 * `return pl_fail(err, PL_ERR_FORMAT, "bad %s", what);`. */
int pl_fail(pl_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Overflow-checked arithmetic: return false when the result does not fit. */
static inline bool pl_add_ok(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool pl_mul_ok(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool pl_add_u64_ok(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool pl_mul_u64_ok(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }

/* Unaligned little-endian loads (the host is little-endian x86-64; memcpy
 * keeps them free of alignment and aliasing undefined behaviour). */
static inline uint16_t pl_load_u16(const void *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline uint32_t pl_load_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline uint64_t pl_load_u64(const void *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline float pl_load_f32(const void *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Reads a whole file into a malloc'ed buffer (NUL-terminated, the NUL not
 * counted in *len). Returns 0 or a negative status with a message in err. */
int pl_read_file(const char *path, char **data, size_t *len, pl_err *err);

/* True when [s, s+len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool pl_utf8_valid(const char *s, size_t len);

/* Length in bytes of the UTF-8 sequence starting at s (at most `avail`); an
 * invalid or truncated lead byte counts as 1. */
size_t pl_utf8_len(const char *s, size_t avail);

/* Monotonic time in seconds. */
double pl_now(void);

#endif
