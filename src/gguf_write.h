/* gguf_write.h — a streaming GGUF v3 writer: metadata and tensor infos are
 * collected in memory, then written as one header, then tensor data is
 * streamed in declaration order (so models larger than memory can be
 * written). Used by tests (hostile variants of fixtures) and model tools. */
#ifndef PL_GGUF_WRITE_H
#define PL_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "util.h"

typedef struct gguf_writer gguf_writer;

/* err is kept and filled by later calls too: it must outlive the writer. */
int gguf_writer_create(const char *path, gguf_writer **out, pl_err *err);
/* Discards an unfinished file (removes it) or frees a finished writer. */
void gguf_writer_free(gguf_writer *w);

/* Metadata, in order. Keys are copied. */
int gguf_writer_add_kv(gguf_writer *w, const gguf_kv *kv); /* copy of a reader's entry */
int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_add_bool(gguf_writer *w, const char *key, bool v);
int gguf_writer_add_str(gguf_writer *w, const char *key, const char *v, size_t len);
/* Tensor info; data offsets are assigned in call order, aligned to 32. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type);

/* Writes the header (after the last add_*), then each tensor's bytes in
 * declaration order; chunks of one tensor may come in several calls. */
int gguf_writer_write_header(gguf_writer *w);
int gguf_writer_write_data(gguf_writer *w, const void *data, size_t n);
/* Checks that every declared byte was written, flushes and closes. */
int gguf_writer_finish(gguf_writer *w);

#endif
