/* fuzz_gguf.c — libFuzzer entry point for the GGUF reader: parse arbitrary
 * bytes, then walk every key, array and tensor the reader accepted. */
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char msg[256];
    pl_err err = {msg, sizeof msg};
    gguf_file *f = NULL;
    if (gguf_open_memory(data, size, &f, &err) != 0) return 0;
    volatile uint64_t sink = 0;
    for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        sink += (uint8_t)kv->key.ptr[kv->key.len - 1];
        if (kv->type == GGUF_STRING && kv->v.str.len) sink += (uint8_t)kv->v.str.ptr[kv->v.str.len - 1];
        if (kv->type == GGUF_ARRAY)
            for (uint64_t j = 0; j < kv->arr_n; j++) {
                if (kv->arr_type == GGUF_STRING)
                    sink += kv->arr_strs[j].len ? (uint8_t)kv->arr_strs[j].ptr[0] : 0;
                else
                    sink += (uint64_t)gguf_arr_i64(kv, j) + (gguf_arr_f64(kv, j) > 0.0);
            }
    }
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (t->nbytes) sink += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->nbytes - 1];
    }
    (void)sink;
    gguf_close(f);
    return 0;
}
