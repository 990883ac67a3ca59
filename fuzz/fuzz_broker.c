/* fuzz_broker.c — libFuzzer entry point for the broker's request parser: the
 * input is one request frame body (JSON); when it parses, the decoded fields
 * are touched and the base64 codec is round-tripped on the decoded data. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs one input; always returns 0 (crashes and sanitizer reports are the findings). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char ebuf[256];
    pl_err err = {ebuf, sizeof ebuf};
    pl_broker_request r;
    volatile size_t sink = 0;
    if (pl_broker_parse_request((const char *)data, size, &r, &err) == 0) {
        if (r.path) sink += strlen(r.path);
        if (r.cwd) sink += strlen(r.cwd);
        if (r.host) sink += strlen(r.host);
        for (size_t i = 0; i < r.argc; i++) sink += strlen(r.argv[i]);
        if (r.argv && r.argv[r.argc]) abort(); /* argv must be NULL-terminated */
        if (r.has_data) {
            size_t n;
            char *enc = pl_broker_b64_encode(r.data, r.data_len, &n);
            unsigned char *dec = NULL;
            size_t dn = 0;
            if (!enc || pl_broker_b64_decode(enc, n, &dec, &dn) != 0 || dn != r.data_len ||
                (dn && memcmp(dec, r.data, dn)))
                abort(); /* base64 must round-trip */
            free(enc);
            free(dec);
        }
    }
    pl_broker_request_free(&r);
    /* The raw input as base64 text as well. */
    unsigned char *dec = NULL;
    size_t dn = 0;
    if (pl_broker_b64_decode((const char *)data, size, &dec, &dn) == 0) sink += dn;
    free(dec);
    (void)sink;
    return 0;
}
