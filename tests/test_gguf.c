/* test_gguf.c — the GGUF reader on valid files (v2, v3, every value type,
 * vocab-only fixtures, model fixtures) and on hostile ones (every
 * truncation, wrong magic, absurd counts and dimensions, offsets past the
 * end, overlapping tensors, unknown types, bad UTF-8, duplicates). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_builder.h"
#include "probelogits.h"
#include "testlib.h"

static char ebuf[512];

static int parse(const gb *b, gguf_file **f) {
    pl_err err = {ebuf, sizeof ebuf};
    ebuf[0] = '\0';
    return gguf_open_memory(b->buf, b->len, f, &err);
}

/* A valid v3 file with every scalar type, arrays and two tensors. */
static gb make_valid(uint32_t version) {
    gb b = {0};
    gb_header(&b, version, 2, 15);
    gb_kv_str(&b, "general.architecture", "llama");
    const uint32_t types[] = {0, 1, 2, 3, 4, 5, 7, 10, 11, 12};
    const uint64_t vals[] = {200,
                             (uint64_t)-3,
                             60000,
                             (uint64_t)-300,
                             4000000000u,
                             (uint64_t)-70000,
                             1,
                             1ull << 40,
                             (uint64_t) - (1ll << 40),
                             0};
    const size_t sizes[] = {1, 1, 2, 2, 4, 4, 1, 8, 8, 8};
    for (int i = 0; i < 10; i++) {
        char key[32];
        snprintf(key, sizeof key, "t.v%u", types[i]);
        gb_str(&b, key);
        gb_u32(&b, types[i]);
        if (types[i] == 12) {
            double d = 2.5;
            gb_bytes(&b, &d, 8);
        } else {
            gb_bytes(&b, &vals[i], sizes[i]);
        }
    }
    gb_kv_f32(&b, "t.f32", 0.25f);
    gb_str(&b, "t.arr_i32");
    gb_u32(&b, 9);
    gb_u32(&b, 5);
    gb_u64(&b, 3);
    for (int32_t i = -1; i < 2; i++) gb_bytes(&b, &i, 4);
    gb_str(&b, "t.arr_str");
    gb_u32(&b, 9);
    gb_u32(&b, 8);
    gb_u64(&b, 2);
    gb_str(&b, "ab");
    gb_str(&b, "");
    gb_kv_u32(&b, "general.alignment", 64);
    const uint64_t ne_a[2] = {32, 2}, ne_b[1] = {8};
    gb_tensor(&b, "a", 2, ne_a, 8 /* Q8_0: 2 rows x 34 bytes */, 0);
    gb_tensor(&b, "b", 1, ne_b, 0, 128);
    gb_align(&b, 64);
    for (int i = 0; i < 128 + 32; i++) gb_u8(&b, (uint8_t)i);
    return b;
}

static void test_valid(void) {
    for (uint32_t version = 2; version <= 3; version++) {
        gb b = make_valid(version);
        gguf_file *f = NULL;
        int rc = parse(&b, &f);
        CHECK(rc == PL_OK, "valid v%u: %s", version, ebuf);
        if (rc) continue;
        CHECK(gguf_version(f) == version, "version");
        CHECK(gguf_n_kv(f) == 15 && gguf_n_tensors(f) == 2, "counts");
        CHECK(gguf_find(f, "t.v0")->v.u64 == 200, "u8");
        CHECK(gguf_find(f, "t.v1")->v.i64 == -3, "i8");
        CHECK(gguf_find(f, "t.v2")->v.u64 == 60000, "u16");
        CHECK(gguf_find(f, "t.v3")->v.i64 == -300, "i16");
        CHECK(gguf_find(f, "t.v4")->v.u64 == 4000000000u, "u32");
        CHECK(gguf_find(f, "t.v5")->v.i64 == -70000, "i32");
        CHECK(gguf_find(f, "t.v7")->v.u64 == 1, "bool");
        CHECK(gguf_find(f, "t.v10")->v.u64 == 1ull << 40, "u64");
        CHECK(gguf_find(f, "t.v11")->v.i64 == -(1ll << 40), "i64");
        CHECK(gguf_find(f, "t.v12")->v.f64 == 2.5, "f64");
        CHECK(gguf_find(f, "t.f32")->v.f64 == 0.25, "f32");
        const gguf_kv *a = gguf_find(f, "t.arr_i32");
        CHECK(a && a->arr_n == 3 && gguf_arr_i64(a, 0) == -1 && gguf_arr_i64(a, 2) == 1, "i32 array");
        CHECK(gguf_arr_i64(a, 3) == 0, "out-of-range array index reads 0");
        const gguf_kv *s = gguf_find(f, "t.arr_str");
        CHECK(s && s->arr_n == 2 && s->arr_strs[0].len == 2 && !memcmp(s->arr_strs[0].ptr, "ab", 2) &&
                  s->arr_strs[1].len == 0,
              "string array");
        uint32_t u;
        CHECK(gguf_get_u32(f, "t.v4", &u, NULL) == PL_OK && u == 4000000000u, "get_u32");
        CHECK(gguf_get_u32(f, "t.v1", &u, NULL) == PL_ERR_FORMAT, "negative refused as u32");
        CHECK(gguf_get_u32(f, "absent", &u, NULL) == PL_ERR_ARG, "absent key");
        const gguf_tensor *t = gguf_find_tensor(f, "a");
        CHECK(t && t->type == 8 && t->ne[0] == 32 && t->ne[1] == 2 && t->nbytes == 68, "tensor a");
        const gguf_tensor *tb = gguf_find_tensor(f, "b");
        CHECK(tb && tb->nbytes == 32 && ((const uint8_t *)tb->data)[0] == 128, "tensor b data offset");
        gguf_close(f);
        free(b.buf);
    }
}

/* Every prefix of a valid file is refused cleanly (the sanitizer build
 * turns any out-of-bounds read into a failure). */
static void test_truncations(void) {
    gb b = make_valid(3);
    int refused = 0;
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.buf, n);
        gguf_file *f = NULL;
        pl_err err = {ebuf, sizeof ebuf};
        int rc = gguf_open_memory(copy, n, &f, &err);
        refused += rc != PL_OK;
        gguf_close(f);
        free(copy);
    }
    CHECK(refused == (int)b.len, "every truncation refused: %d of %zu", refused, b.len);
    free(b.buf);
}

/* Expect a parse failure whose message contains `needle`. */
static void expect_fail(gb *b, const char *needle, const char *what) {
    gguf_file *f = NULL;
    int rc = parse(b, &f);
    CHECK(rc != PL_OK && strstr(ebuf, needle), "%s: rc %d, message '%s'", what, rc, ebuf);
    gguf_close(f);
    free(b->buf);
    *b = (gb){0};
}

static void test_hostile(void) {
    gb b = {0};
    gb_bytes(&b, "GGUG", 4), gb_u32(&b, 3), gb_u64(&b, 0), gb_u64(&b, 0);
    expect_fail(&b, "bad magic", "wrong magic");

    gb_header(&b, 1, 0, 0);
    expect_fail(&b, "version 1", "version 1");

    gb_header(&b, 3, 0, 1ull << 60);
    expect_fail(&b, "metadata count", "absurd kv count");

    gb_header(&b, 3, 1ull << 62, 0);
    expect_fail(&b, "tensor count", "absurd tensor count");

    gb_header(&b, 3, 0, 1);
    gb_u64(&b, 1ull << 50);
    gb_u64(&b, 0), gb_u64(&b, 0);
    expect_fail(&b, "string length", "absurd key length");

    gb_header(&b, 3, 0, 1);
    gb_str(&b, "k");
    gb_u32(&b, 9), gb_u32(&b, 8), gb_u64(&b, 1ull << 61);
    expect_fail(&b, "cannot fit", "absurd string array");

    gb_header(&b, 3, 0, 1);
    gb_str(&b, "k");
    gb_u32(&b, 9), gb_u32(&b, 12), gb_u64(&b, 1ull << 61);
    expect_fail(&b, "past the end", "absurd numeric array (count x size overflows)");

    gb_header(&b, 3, 0, 1);
    gb_str(&b, "k");
    gb_u32(&b, 9), gb_u32(&b, 9), gb_u64(&b, 1);
    expect_fail(&b, "element type", "nested array");

    gb_header(&b, 3, 0, 1);
    gb_str(&b, "k");
    gb_u32(&b, 13);
    gb_u64(&b, 0), gb_u64(&b, 0);
    expect_fail(&b, "unknown value type", "unknown value type");

    gb_header(&b, 3, 0, 1);
    gb_str(&b, "k\xff");
    gb_u32(&b, 4), gb_u32(&b, 1);
    expect_fail(&b, "UTF-8", "invalid UTF-8 key");

    gb_header(&b, 3, 0, 1);
    gb_str(&b, "k");
    gb_u32(&b, 7), gb_u8(&b, 2);
    expect_fail(&b, "bool", "bool out of range");

    gb_header(&b, 3, 0, 2);
    gb_kv_u32(&b, "k", 1), gb_kv_u32(&b, "k", 2);
    expect_fail(&b, "twice", "duplicate key");

    gb_header(&b, 3, 0, 1);
    gb_kv_u32(&b, "general.alignment", 48);
    expect_fail(&b, "alignment", "alignment not a power of two");

    const uint64_t ne[5] = {32, 4, 1, 1, 1};
    gb_header(&b, 3, 1, 0);
    gb_tensor(&b, "t", 5, ne, 0, 0);
    expect_fail(&b, "dimensions", "too many dims");

    const uint64_t huge[2] = {1ull << 40, 1ull << 40};
    gb_header(&b, 3, 1, 0);
    gb_tensor(&b, "t", 2, huge, 0, 0);
    expect_fail(&b, "too large", "element count overflow");

    const uint64_t zero[2] = {32, 0};
    gb_header(&b, 3, 1, 0);
    gb_tensor(&b, "t", 2, zero, 0, 0);
    expect_fail(&b, "zero", "zero dimension");

    gb_header(&b, 3, 1, 0);
    gb_tensor(&b, "t", 2, ne, 4 /* removed Q4_2 */, 0);
    expect_fail(&b, "unknown tensor type", "removed type id");

    gb_header(&b, 3, 1, 0);
    gb_tensor(&b, "t", 2, ne, 99, 0);
    expect_fail(&b, "unknown tensor type 99", "unknown type id");

    const uint64_t odd[2] = {33, 1};
    gb_header(&b, 3, 1, 0);
    gb_tensor(&b, "t", 2, odd, 8, 0);
    expect_fail(&b, "block size", "row not a multiple of the block");

    gb_header(&b, 3, 1, 0);
    gb_tensor(&b, "t", 2, ne, 0, 0);
    gb_align(&b, 32);
    for (int i = 0; i < 100; i++) gb_u8(&b, 0);
    expect_fail(&b, "past the end", "data past the end");

    gb_header(&b, 3, 1, 0);
    gb_tensor(&b, "t", 2, ne, 0, (1ull << 63) + 1);
    gb_align(&b, 32);
    gb_u64(&b, 0);
    expect_fail(&b, "aligned", "unaligned huge offset");

    gb_header(&b, 3, 1, 0);
    gb_tensor(&b, "t", 2, ne, 0, 0xffffffffffffffe0ull);
    gb_align(&b, 32);
    gb_u64(&b, 0);
    expect_fail(&b, "past the end", "offset + size overflows");

    gb_header(&b, 3, 2, 0);
    gb_tensor(&b, "t1", 2, ne, 0, 0);
    gb_tensor(&b, "t2", 2, ne, 0, 256);
    gb_align(&b, 32);
    for (int i = 0; i < 1024; i++) gb_u8(&b, 0);
    expect_fail(&b, "overlap", "overlapping tensors");

    gb_header(&b, 3, 2, 0);
    gb_tensor(&b, "t", 2, ne, 0, 0);
    gb_tensor(&b, "t", 2, ne, 0, 512);
    gb_align(&b, 32);
    for (int i = 0; i < 1024; i++) gb_u8(&b, 0);
    expect_fail(&b, "twice", "duplicate tensor name");

    gb_header(&b, 3, 1, 0);
    gb_tensor(&b, "t\xc0\x80", 2, ne, 0, 0);
    expect_fail(&b, "UTF-8", "overlong UTF-8 tensor name");
}

/* Every fixture (vocab-only and full models) parses. */
static void test_fixtures(void) {
    static const char *const files[] = {
        "vocab/ggml-vocab-llama-spm.gguf",      "vocab/ggml-vocab-qwen2.gguf",       "vocab/ggml-vocab-llama-bpe.gguf",
        "vocab/ggml-vocab-gpt-2.gguf",          "vocab/ggml-vocab-phi-3.gguf",       "vocab/ggml-vocab-starcoder.gguf",
        "vocab/ggml-vocab-deepseek-coder.gguf", "models/tiny-llama-spm-q4_k_m.gguf", "models/tiny-qwen2-q8_0.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "../shared/fixtures/%s", files[i]);
        gguf_file *f = NULL;
        pl_err err = {ebuf, sizeof ebuf};
        int rc = gguf_open(path, &f, &err);
        CHECK(rc == PL_OK, "%s: %s", files[i], ebuf);
        CHECK(!f || gguf_find(f, "tokenizer.ggml.tokens"), "%s: tokens", files[i]);
        gguf_close(f);
    }
    gguf_file *f = NULL;
    pl_err err = {ebuf, sizeof ebuf};
    CHECK(gguf_open("/nonexistent.gguf", &f, &err) == PL_ERR_IO && strstr(ebuf, "nonexistent"), "missing file");
    CHECK(gguf_open("/", &f, &err) == PL_ERR_IO, "directory refused");
}

int main(void) {
    test_valid();
    test_truncations();
    test_hostile();
    test_fixtures();
    return testlib_finish("test_gguf");
}
