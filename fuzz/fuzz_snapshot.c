/* fuzz_snapshot.c — libFuzzer entry point for the probe snapshot loader
 * (pl_probe_load): arbitrary bytes are written to a temporary file and
 * loaded against a fixture model. Unless bit 7 of byte 8 (the version's low
 * byte) is set, the harness rewrites the trailing FNV-1a checksum to match
 * the bytes, so mutations get past the checksum and exercise the
 * structural checks behind it; with the bit set the checksum path runs. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probelogits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pl_model *g_model;
static pl_session *g_session;

static const pl_probe_params *params(void) {
    static const char *const cf[2] = {"N/A", ""};
    static const pl_probe_params pp = {.template_name = "chatml",
                                       .system = "You are a safety monitor.",
                                       .alpha = 0.8,
                                       .content_free = cf,
                                       .n_content_free = 2};
    return &pp;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    if (!g_model) {
        const char *path =
            getenv("PL_FUZZ_MODEL") ? getenv("PL_FUZZ_MODEL") : "../shared/fixtures/models/tiny-qwen2-q8_0.gguf";
        if (pl_model_open(path, 0, &g_model, err, sizeof err) != PL_OK ||
            pl_session_create(g_model, 256, 1, &g_session, err, sizeof err) != PL_OK)
            return 0;
    }
    if (size > (1u << 22)) return 0;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    if (size > 16 && !(buf[8] & 0x80)) { /* fix up the checksum: FNV-1a over all but the last 8 bytes */
        uint64_t h = 1469598103934665603ull;
        for (size_t i = 0; i < size - 8; i++) h = (h ^ buf[i]) * 1099511628211ull;
        memcpy(buf + size - 8, &h, 8);
    }
    char path[] = "/tmp/pl_fuzz_snap_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) {
        size_t off = 0;
        while (off < size) {
            ssize_t n = write(fd, buf + off, size - off);
            if (n <= 0) break;
            off += (size_t)n;
        }
        close(fd);
        pl_probe *p = NULL;
        if (pl_probe_load(g_session, params(), path, &p, err, sizeof err) == PL_OK) {
            pl_probe_result r;
            pl_probe_classify(p, 0, "ls", 2, &r);
            pl_probe_free(p);
        }
        unlink(path);
    }
    free(buf);
    return 0;
}
