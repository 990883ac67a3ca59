/* gguf.h — reader for GGUF files (versions 2 and 3) over a read-only mmap or
 * a caller-owned memory buffer.
 *
 * Layout read (all little-endian):
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv × { string key | u32 value_type | value }
 *   n_tensors × { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to general.alignment (default 32) | tensor data
 * where string = u64 length + bytes, array = u32 elem_type + u64 count + elems.
 *
 * Every count, length, dimension and offset is validated (overflow-checked)
 * at open; after a successful open all accessors are bounds-safe. */
#ifndef PL_GGUF_H
#define PL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Metadata value types. */
enum gguf_vtype {
    GGUF_U8 = 0,
    GGUF_I8 = 1,
    GGUF_U16 = 2,
    GGUF_I16 = 3,
    GGUF_U32 = 4,
    GGUF_I32 = 5,
    GGUF_F32 = 6,
    GGUF_BOOL = 7,
    GGUF_STRING = 8,
    GGUF_ARRAY = 9,
    GGUF_U64 = 10,
    GGUF_I64 = 11,
    GGUF_F64 = 12,
    GGUF_VTYPE_COUNT
};

/* ggml tensor types (numbering fixed by the GGUF format). */
enum ggml_type {
    GGML_F32 = 0,
    GGML_F16 = 1,
    GGML_Q4_0 = 2,
    GGML_Q4_1 = 3,
    GGML_Q5_0 = 6,
    GGML_Q5_1 = 7,
    GGML_Q8_0 = 8,
    GGML_Q8_1 = 9,
    GGML_Q2_K = 10,
    GGML_Q3_K = 11,
    GGML_Q4_K = 12,
    GGML_Q5_K = 13,
    GGML_Q6_K = 14,
    GGML_Q8_K = 15,
    GGML_BF16 = 30,
    GGML_TYPE_COUNT = 40
};

/* A string inside the file: not NUL-terminated, may hold any bytes. */
typedef struct gguf_str {
    const char *ptr; /* borrowed from the mapping */
    uint64_t len;    /* bytes */
} gguf_str;

/* One metadata key/value. Scalars are decoded; arrays point into the file. */
typedef struct gguf_kv {
    gguf_str key;
    uint32_t type; /* enum gguf_vtype */
    union {
        uint64_t u64; /* every unsigned integer type and bool, widened */
        int64_t i64;  /* every signed integer type, widened */
        double f64;   /* F32 and F64, widened */
        gguf_str str;
    } v;
    uint32_t arr_type;       /* element type when type == GGUF_ARRAY */
    uint64_t arr_n;          /* element count when type == GGUF_ARRAY */
    const uint8_t *arr_data; /* numeric arrays: arr_n packed LE elements (unaligned) */
    gguf_str *arr_strs;      /* string arrays: arr_n strings, owned by the gguf_file */
} gguf_kv;

/* One tensor description, validated against the data section. */
typedef struct gguf_tensor {
    char *name;       /* NUL-terminated copy, owned by the gguf_file */
    uint32_t n_dims;  /* 1..4 */
    int64_t ne[4];    /* elements per dimension, ne[0] = row length; unused dims = 1 */
    uint32_t type;    /* enum ggml_type */
    uint64_t offset;  /* from the start of the data section, aligned */
    uint64_t nbytes;  /* exact size of the data */
    const void *data; /* borrowed pointer into the mapping */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Maps path read-only and parses it. */
int gguf_open(const char *path, gguf_file **out, pl_err *err);
/* Parses a caller-owned buffer that must outlive the gguf_file (fuzzing, tests). */
int gguf_open_memory(const void *data, size_t size, gguf_file **out, pl_err *err);
void gguf_close(gguf_file *f);
/* True when the bytes are a read-only private file mapping (gguf_open), so
 * pages may be dropped with MADV_DONTNEED and read again from the file. */
bool gguf_is_mapped(const gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint64_t gguf_n_kv(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i);
/* Key lookup (linear; metadata has tens of keys). NULL when absent. */
const gguf_kv *gguf_find(const gguf_file *f, const char *key);
uint64_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);
/* SHA-like identity of the file: size and a hash of header + metadata bytes. */
uint64_t gguf_identity(const gguf_file *f);
size_t gguf_file_size(const gguf_file *f);

/* Typed getters with integer widening; return PL_ERR_FORMAT naming the key
 * when the value has another type, PL_ERR_ARG (no message) when absent. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, pl_err *err);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, pl_err *err);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out, pl_err *err);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, pl_err *err);
/* Array element i as a number (integer or float element types). */
double gguf_arr_f64(const gguf_kv *kv, uint64_t i);
int64_t gguf_arr_i64(const gguf_kv *kv, uint64_t i);

/* Names and block geometry of ggml types. type_name is "?" for unknown ids;
 * block size 0 means the type is unknown or removed from the format. */
const char *ggml_type_name(uint32_t type);
uint32_t ggml_blck_size(uint32_t type);
uint32_t ggml_type_size(uint32_t type);
const char *gguf_vtype_name(uint32_t vtype);

#endif
