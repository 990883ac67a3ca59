/* fuzz_dataset.c — libFuzzer entry point for the dataset readers: the input
 * is parsed in memory as JSONL and as CSV (pl_dataset_parse_jsonl /
 * pl_dataset_parse_csv); a successful parse is shuffled and cut with
 * pl_dataset_limit and every item's strings are walked. Errors are expected;
 * crashes, leaks and undefined behaviour are not. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dataset.h"
#include "probelogits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const pl_dataset *ds) {
    size_t total = 0;
    for (size_t i = 0; i < ds->n; i++)
        total += strlen(ds->items[i].id) + strlen(ds->items[i].text) + strlen(ds->items[i].category) +
                 (size_t)ds->items[i].label;
    return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char ebuf[256];
    pl_err err = {ebuf, sizeof ebuf};
    for (int csv = 0; csv < 2; csv++) {
        pl_dataset *ds = NULL;
        int rc = csv ? pl_dataset_parse_csv((const char *)data, size, "fuzz.csv", &ds, &err)
                     : pl_dataset_parse_jsonl((const char *)data, size, "fuzz.jsonl", &ds, &err);
        if (rc == PL_OK) {
            volatile size_t sink = walk(ds);
            (void)sink;
            pl_dataset_limit(ds, ds->n / 2, size, &err);
            sink = walk(ds);
            pl_dataset_free(ds);
        } else if (ds != NULL || rc == PL_ERR_INTERNAL) {
            __builtin_trap(); /* failures must not hand back a dataset */
        }
    }
    return 0;
}
