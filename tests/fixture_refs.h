/* fixture_refs.h — readers for the llama.cpp reference files in
 * ../shared/fixtures (prompts.json, refs/<model>/refs.json), shared by the
 * logits tests (test_logits.c, test_fast.c). Header-only, json-c. */
#ifndef PL_TEST_FIXTURE_REFS_H
#define PL_TEST_FIXTURE_REFS_H

#include <json-c/json.h>
#include <math.h>
#include <string.h>

/* Text of the prompt called name in prompts.json's array, or NULL. */
static inline const char *prompt_text(json_object *prompts, const char *name) {
    for (size_t i = 0; i < json_object_array_length(prompts); i++) {
        json_object *p = json_object_array_get_idx(prompts, i), *v;
        json_object_object_get_ex(p, "name", &v);
        if (!strcmp(json_object_get_string(v), name)) {
            json_object_object_get_ex(p, "text", &v);
            return json_object_get_string(v);
        }
    }
    return NULL;
}

/* max |row[id] - logit| over the [id, logit] pairs of a "top" array. */
static inline double top_diff(const float *row, json_object *summary) {
    json_object *top;
    json_object_object_get_ex(summary, "top", &top);
    double worst = 0;
    for (size_t i = 0; i < json_object_array_length(top); i++) {
        json_object *pair = json_object_array_get_idx(top, i);
        int id = json_object_get_int(json_object_array_get_idx(pair, 0));
        double ref = json_object_get_double(json_object_array_get_idx(pair, 1));
        double d = fabs((double)row[id] - ref);
        if (d > worst) worst = d;
    }
    return worst;
}

#endif
