/* testlib.h — a minimal test harness: CHECK counts passes and failures,
 * and testlib_finish() prints the plain closing line "N passed, N failed"
 * and returns the process exit status. */
#ifndef PL_TESTLIB_H
#define PL_TESTLIB_H

#include <stdio.h>

static int tl_passed, tl_failed;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (cond) {                                                                                                    \
            tl_passed++;                                                                                               \
        } else {                                                                                                       \
            tl_failed++;                                                                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                            \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

static inline int testlib_finish(const char *name) {
    printf("%s: %d passed, %d failed\n", name, tl_passed, tl_failed);
    return tl_failed ? 1 : 0;
}

#endif
