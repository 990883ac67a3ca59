/* fuzz_audit.c — libFuzzer entry point for the audit-log verifier: arbitrary
 * bytes are written to a temporary file and checked with pl_audit_verify,
 * which must classify them (intact, or the first broken / torn record)
 * without crashing. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[] = "/tmp/pl_fuzz_audit_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0) break;
        off += (size_t)n;
    }
    close(fd);
    char msg[256];
    pl_err err = {msg, sizeof msg};
    pl_audit_report rep;
    if (pl_audit_verify(path, &rep, &err) == 0) {
        volatile size_t sink = rep.records + rep.line + (size_t)rep.problem;
        (void)sink;
    }
    unlink(path);
    return 0;
}
