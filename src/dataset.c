/* dataset.c — implementation of dataset.h: known-name resolution, a JSONL
 * reader on json-c, a strict RFC 4180 CSV reader, label mapping and the
 * seeded shuffle/limit. */
#include "dataset.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "metrics.h"
#include "probelogits.h"

/* ---- building ---------------------------------------------------------- */

static pl_dataset *ds_new(const char *file) {
    pl_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return NULL;
    ds->path = strdup(file ? file : "<memory>");
    ds->name = strdup(file ? file : "<memory>");
    if (!ds->path || !ds->name) {
        pl_dataset_free(ds);
        return NULL;
    }
    return ds;
}

void pl_dataset_free(pl_dataset *ds) {
    if (!ds) return;
    for (size_t i = 0; i < ds->n; i++) {
        free(ds->items[i].id);
        free(ds->items[i].text);
        free(ds->items[i].category);
    }
    free(ds->items);
    free(ds->name);
    free(ds->path);
    free(ds);
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Appends an item, taking copies of the strings; *cap is the allocated count. */
static int ds_push(pl_dataset *ds, size_t *cap, const char *id, const char *text, size_t text_len, const char *category,
                   int label, pl_err *err) {
    if (ds->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 256, bytes;
        if (!pl_mul_ok(ncap, sizeof *ds->items, &bytes)) return pl_fail(err, PL_ERR_NOMEM, "dataset too large");
        pl_dataset_item *ni = realloc(ds->items, bytes);
        if (!ni) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
        ds->items = ni;
        *cap = ncap;
    }
    pl_dataset_item it = {strdup(id), dup_n(text, text_len), strdup(category ? category : ""), label};
    if (!it.id || !it.text || !it.category) {
        free(it.id);
        free(it.text);
        free(it.category);
        return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    }
    ds->items[ds->n++] = it;
    ds->n_pos += (size_t)label;
    return PL_OK;
}

/* "FILE:LINE: message" */
__attribute__((format(printf, 4, 5))) static int row_fail(pl_err *err, const char *file, size_t line, const char *fmt,
                                                          ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pl_fail(err, PL_ERR_FORMAT, "%s:%zu: %s", file, line, msg);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- labels ------------------------------------------------------------ */

int pl_dataset_parse_label(const char *s) {
    static const char *const pos[] = {"1",      "true",    "yes",   "positive", "dangerous",
                                      "unsafe", "harmful", "toxic", "malicious"};
    static const char *const neg[] = {"0",    "false",    "no",        "negative", "benign",
                                      "safe", "harmless", "non-toxic", "nontoxic"};
    if (!s) return -1;
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    for (size_t i = 0; i < sizeof pos / sizeof *pos; i++)
        if (strlen(pos[i]) == n && strncasecmp(s, pos[i], n) == 0) return 1;
    for (size_t i = 0; i < sizeof neg / sizeof *neg; i++)
        if (strlen(neg[i]) == n && strncasecmp(s, neg[i], n) == 0) return 0;
    return -1;
}

/* ---- JSONL ------------------------------------------------------------- */

static const char *obj_str(json_object *o, const char *key) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) return NULL;
    return json_object_get_string(v);
}

/* Validates a string field value: no NUL, valid UTF-8. */
static int str_ok(json_object *v) {
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    return memchr(s, '\0', n) == NULL && pl_utf8_valid(s, n);
}

static int jsonl_row(pl_dataset *ds, size_t *cap, json_object *o, const char *file, size_t line, pl_err *err) {
    if (!json_object_is_type(o, json_type_object)) return row_fail(err, file, line, "not a JSON object");
    json_object *t, *l, *v;
    const char *tk = "text";
    if (!json_object_object_get_ex(o, tk, &t)) {
        tk = "action";
        if (!json_object_object_get_ex(o, tk, &t)) return row_fail(err, file, line, "missing \"text\" (or \"action\")");
    }
    if (!json_object_is_type(t, json_type_string)) return row_fail(err, file, line, "\"%s\" is not a string", tk);
    size_t tlen = (size_t)json_object_get_string_len(t);
    if (tlen == 0) return row_fail(err, file, line, "empty \"%s\"", tk);
    if (!str_ok(t)) return row_fail(err, file, line, "\"%s\" has a NUL or invalid UTF-8", tk);

    if (!json_object_object_get_ex(o, "label", &l)) return row_fail(err, file, line, "missing \"label\"");
    int label = -1;
    switch (json_object_get_type(l)) {
    case json_type_boolean: label = json_object_get_boolean(l) ? 1 : 0; break;
    case json_type_int: {
        int64_t x = json_object_get_int64(l);
        if (x == 0 || x == 1) label = (int)x;
        break;
    }
    case json_type_string: label = pl_dataset_parse_label(json_object_get_string(l)); break;
    default: break;
    }
    if (label < 0) return row_fail(err, file, line, "bad \"label\" %.40s", json_object_to_json_string(l));

    const char *cat = NULL;
    static const char *const cat_keys[] = {"category", "semantic_category", "type"};
    for (size_t k = 0; k < 3 && !cat; k++) {
        if (!json_object_object_get_ex(o, cat_keys[k], &v)) continue;
        if (!json_object_is_type(v, json_type_string) || !str_ok(v))
            return row_fail(err, file, line, "\"%s\" is not a valid string", cat_keys[k]);
        cat = json_object_get_string(v);
    }
    if (!cat && json_object_object_get_ex(o, "jailbreaking", &v) && json_object_is_type(v, json_type_int) &&
        json_object_get_int64(v) == 1)
        cat = "jailbreaking";

    char id[512];
    id[0] = '\0';
    if (json_object_object_get_ex(o, "id", &v)) {
        const char *lang = obj_str(o, "language");
        if (json_object_is_type(v, json_type_string)) {
            if (!str_ok(v) || json_object_get_string_len(v) == 0)
                return row_fail(err, file, line, "\"id\" is empty or not valid UTF-8");
            snprintf(id, sizeof id, "%s%s%s", lang ? lang : "", lang ? "/" : "", json_object_get_string(v));
        } else if (json_object_is_type(v, json_type_int)) {
            snprintf(id, sizeof id, "%s%s%lld", lang ? lang : "", lang ? "/" : "", (long long)json_object_get_int64(v));
        } else {
            return row_fail(err, file, line, "\"id\" is neither a string nor an integer");
        }
    } else {
        static const char *const id_keys[] = {"behavior_id", "conv_id", "test_guid"};
        for (size_t k = 0; k < 3 && !id[0]; k++) {
            const char *s = obj_str(o, id_keys[k]);
            if (s && *s) snprintf(id, sizeof id, "%s", s);
        }
        if (!id[0]) snprintf(id, sizeof id, "%s:%zu", base_name(file), line);
    }
    if (!pl_utf8_valid(id, strlen(id))) /* snprintf may have cut a sequence */
        snprintf(id, sizeof id, "%s:%zu", base_name(file), line);
    return ds_push(ds, cap, id, json_object_get_string(t), tlen, cat, label, err);
}

int pl_dataset_parse_jsonl(const char *buf, size_t len, const char *file, pl_dataset **out, pl_err *err) {
    if (!out) return pl_fail(err, PL_ERR_ARG, "NULL output");
    *out = NULL;
    if (!buf && len) return pl_fail(err, PL_ERR_ARG, "NULL buffer");
    if (!file) file = "<memory>";
    pl_dataset *ds = ds_new(file);
    json_tokener *tok = json_tokener_new();
    if (!ds || !tok) {
        pl_dataset_free(ds);
        if (tok) json_tokener_free(tok);
        return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    size_t cap = 0, pos = 0, line = 0;
    int rc = PL_OK;
    while (pos < len && rc == PL_OK) {
        line++;
        const char *s = buf + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl ? 1 : 0);
        while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
        size_t lead = 0;
        while (lead < n && (s[lead] == ' ' || s[lead] == '\t')) lead++;
        if (lead == n) continue;                                                /* blank line */
        if (line == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) lead = 3; /* UTF-8 BOM */
        if (memchr(s, '\0', n)) {
            rc = row_fail(err, file, line, "NUL byte in line");
            break;
        }
        if (!pl_utf8_valid(s, n)) {
            rc = row_fail(err, file, line, "invalid UTF-8");
            break;
        }
        if (n - lead > (size_t)INT32_MAX) {
            rc = row_fail(err, file, line, "line too long");
            break;
        }
        json_tokener_reset(tok);
        json_object *o = json_tokener_parse_ex(tok, s + lead, (int)(n - lead));
        enum json_tokener_error je = json_tokener_get_error(tok);
        if (!o || je != json_tokener_success || json_tokener_get_parse_end(tok) != n - lead) {
            rc = row_fail(err, file, line, "invalid JSON: %s",
                          je == json_tokener_success    ? "trailing characters"
                          : je == json_tokener_continue ? "unexpected end of line"
                                                        : json_tokener_error_desc(je));
            json_object_put(o);
            break;
        }
        rc = jsonl_row(ds, &cap, o, file, line, err);
        json_object_put(o);
    }
    json_tokener_free(tok);
    if (rc) {
        pl_dataset_free(ds);
        return rc;
    }
    *out = ds;
    return PL_OK;
}

/* ---- CSV --------------------------------------------------------------- */

/* One parsed record: fields as NUL-terminated copies. */
typedef struct csv_rec {
    char **f;
    size_t n, cap;
} csv_rec;

static void rec_clear(csv_rec *r) {
    for (size_t i = 0; i < r->n; i++) free(r->f[i]);
    r->n = 0;
}

static int rec_add(csv_rec *r, const char *s, size_t n) {
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 8;
        char **nf = realloc(r->f, nc * sizeof *nf);
        if (!nf) return PL_ERR_NOMEM;
        r->f = nf;
        r->cap = nc;
    }
    char *d = dup_n(s, n);
    if (!d) return PL_ERR_NOMEM;
    r->f[r->n++] = d;
    return PL_OK;
}

/* Growable byte buffer for one field being unescaped. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static int sb_put(sbuf *b, char c) {
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        char *np = realloc(b->p, nc);
        if (!np) return PL_ERR_NOMEM;
        b->p = np;
        b->cap = nc;
    }
    b->p[b->n++] = c;
    return PL_OK;
}

/* Reads one record starting at *pos (which must be < len) into r. *line is
 * the physical line the record starts on and is advanced past it. A record
 * ends at an unquoted LF / CRLF or at the end of the buffer. */
static int csv_record(const char *buf, size_t len, size_t *pos, size_t *line, csv_rec *r, sbuf *fb, const char *file,
                      pl_err *err) {
    size_t i = *pos, start_line = *line;
    rec_clear(r);
    for (;;) { /* one field per iteration */
        fb->n = 0;
        if (i < len && buf[i] == '"') {
            i++;
            for (;;) {
                if (i >= len) return row_fail(err, file, start_line, "unterminated quoted field");
                char c = buf[i++];
                if (c == '"') {
                    if (i < len && buf[i] == '"') {
                        i++;
                        if (sb_put(fb, '"')) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
                        continue;
                    }
                    break;
                }
                if (c == '\n') (*line)++;
                if (sb_put(fb, c)) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
            }
            if (i < len && buf[i] != ',' && buf[i] != '\n' && !(buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n') &&
                !(buf[i] == '\r' && i + 1 == len))
                return row_fail(err, file, *line, "character after closing quote");
        } else {
            while (i < len && buf[i] != ',' && buf[i] != '\n') {
                if (buf[i] == '"') return row_fail(err, file, *line, "quote inside an unquoted field");
                if (buf[i] == '\r' && (i + 1 == len || buf[i + 1] == '\n')) break;
                if (sb_put(fb, buf[i])) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
                i++;
            }
        }
        if (memchr(fb->p ? fb->p : "", '\0', fb->n)) return row_fail(err, file, *line, "NUL byte in field");
        if (!pl_utf8_valid(fb->p ? fb->p : "", fb->n)) return row_fail(err, file, *line, "invalid UTF-8");
        if (rec_add(r, fb->p ? fb->p : "", fb->n)) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
        if (i < len && buf[i] == ',') {
            i++;
            continue;
        }
        if (i < len && buf[i] == '\r') i++;
        if (i < len && buf[i] == '\n') i++;
        (*line)++;
        *pos = i;
        return PL_OK;
    }
}

static long col_index(const csv_rec *h, const char *const *names, size_t n_names) {
    for (size_t k = 0; k < n_names; k++)
        for (size_t i = 0; i < h->n; i++)
            if (strcmp(h->f[i], names[k]) == 0) return (long)i;
    return -1;
}

/* True when the rest of a physical line starting at i is empty (LF / CRLF / end). */
static int blank_line_at(const char *buf, size_t len, size_t i) {
    return i >= len || buf[i] == '\n' || (buf[i] == '\r' && (i + 1 == len || buf[i + 1] == '\n'));
}

static size_t skip_line_end(const char *buf, size_t len, size_t i) {
    if (i < len && buf[i] == '\r') i++;
    if (i < len && buf[i] == '\n') i++;
    return i;
}

int pl_dataset_parse_csv(const char *buf, size_t len, const char *file, pl_dataset **out, pl_err *err) {
    if (!out) return pl_fail(err, PL_ERR_ARG, "NULL output");
    *out = NULL;
    if (!buf && len) return pl_fail(err, PL_ERR_ARG, "NULL buffer");
    if (!file) file = "<memory>";
    pl_dataset *ds = ds_new(file);
    if (!ds) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    csv_rec hdr = {0}, rec = {0};
    sbuf fb = {0};
    size_t pos = 0, line = 1, cap = 0;
    int rc = PL_OK;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) pos = 3;
    if (pos >= len) {
        rc = row_fail(err, file, 1, "empty CSV (no header)");
        goto done;
    }
    rc = csv_record(buf, len, &pos, &line, &hdr, &fb, file, err);
    if (rc) goto done;
    static const char *const text_cols[] = {"text", "prompt", "Behavior"};
    static const char *const label_cols[] = {"label"};
    static const char *const cat_cols[] = {"category", "type", "SemanticCategory"};
    static const char *const id_cols[] = {"id", "BehaviorID"};
    static const char *const hb_cols[] = {"FunctionalCategory"};
    long ct = col_index(&hdr, text_cols, 3), cl = col_index(&hdr, label_cols, 1);
    long cc = col_index(&hdr, cat_cols, 3), ci = col_index(&hdr, id_cols, 2);
    int harmbench = cl < 0 && ct >= 0 && strcmp(hdr.f[ct], "Behavior") == 0 && col_index(&hdr, hb_cols, 1) >= 0;
    if (ct < 0) {
        rc = row_fail(err, file, 1, "header has no text column (text, prompt or Behavior)");
        goto done;
    }
    if (cl < 0 && !harmbench) {
        rc = row_fail(err, file, 1, "header has no label column");
        goto done;
    }
    while (pos < len) {
        if (blank_line_at(buf, len, pos)) { /* blank lines are skipped */
            pos = skip_line_end(buf, len, pos);
            line++;
            continue;
        }
        size_t rec_line = line;
        rc = csv_record(buf, len, &pos, &line, &rec, &fb, file, err);
        if (rc) goto done;
        if (rec.n != hdr.n) {
            rc = row_fail(err, file, rec_line, "%zu fields, header has %zu", rec.n, hdr.n);
            goto done;
        }
        const char *text = rec.f[ct];
        if (!*text) {
            rc = row_fail(err, file, rec_line, "empty text");
            goto done;
        }
        int label = harmbench ? 1 : pl_dataset_parse_label(rec.f[cl]);
        if (label < 0) {
            rc = row_fail(err, file, rec_line, "bad label \"%.40s\"", rec.f[cl]);
            goto done;
        }
        char id[512];
        if (ci >= 0 && rec.f[ci][0])
            snprintf(id, sizeof id, "%s", rec.f[ci]);
        else
            snprintf(id, sizeof id, "%s:%zu", base_name(file), rec_line);
        if (!pl_utf8_valid(id, strlen(id))) snprintf(id, sizeof id, "%s:%zu", base_name(file), rec_line);
        rc = ds_push(ds, &cap, id, text, strlen(text), cc >= 0 ? rec.f[cc] : "", label, err);
        if (rc) goto done;
    }
done:
    rec_clear(&hdr);
    rec_clear(&rec);
    free(hdr.f);
    free(rec.f);
    free(fb.p);
    if (rc) {
        pl_dataset_free(ds);
        return rc;
    }
    *out = ds;
    return PL_OK;
}

/* ---- names and files --------------------------------------------------- */

typedef struct known_ds {
    const char *name;
    int in_data; /* 1: under the shared data dir; 0: under the project root */
    const char *rel;
} known_ds;

static const known_ds k_known[] = {
    {"os-actions", 0, "bench/os-actions.jsonl"},
    {"harmbench", 1, "harmbench/harmbench_text_noncopyright.jsonl"},
    {"xstest", 1, "xstest/xstest_prompts.csv"},
    {"toxicchat", 1, "toxicchat/toxicchat0124_test_human.jsonl"},
    {"gtfobins", 1, "gtfobins/gtfobins_commands.jsonl"},
    {"nl2bash", 1, "nl2bash/nl2bash_benign.jsonl"},
    {"redcode-exec", 1, "redcode_exec/redcode_exec.jsonl"},
    {"atomic-red-team", 1, "atomic_red_team_linux/atomic_red_team_linux.jsonl"},
};

int pl_dataset_path(const char *name, char *buf, size_t cap, pl_err *err) {
    if (!name || !buf) return pl_fail(err, PL_ERR_ARG, "NULL argument");
    for (size_t i = 0; i < sizeof k_known / sizeof *k_known; i++) {
        if (strcmp(name, k_known[i].name) != 0) continue;
        const char *root = getenv("PROBELOGITS_ROOT");
        const char *data = getenv("PROBELOGITS_DATA");
        if (!root || !*root) root = ".";
        int w;
        if (!k_known[i].in_data)
            w = snprintf(buf, cap, "%s/%s", root, k_known[i].rel);
        else if (data && *data)
            w = snprintf(buf, cap, "%s/%s", data, k_known[i].rel);
        else
            w = snprintf(buf, cap, "%s/../shared/data/%s", root, k_known[i].rel);
        if (w < 0 || (size_t)w >= cap) return pl_fail(err, PL_ERR_RANGE, "dataset path too long");
        return PL_OK;
    }
    return pl_fail(err, PL_ERR_ARG, "unknown dataset name %s", name);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

int pl_dataset_load(const char *name_or_path, pl_dataset **out, pl_err *err) {
    if (!out) return pl_fail(err, PL_ERR_ARG, "NULL output");
    *out = NULL;
    if (!name_or_path || !*name_or_path) return pl_fail(err, PL_ERR_ARG, "empty dataset name");
    char path[4096];
    int known = pl_dataset_path(name_or_path, path, sizeof path, NULL) == PL_OK;
    if (!known) {
        if (strlen(name_or_path) >= sizeof path) return pl_fail(err, PL_ERR_RANGE, "dataset path too long");
        snprintf(path, sizeof path, "%s", name_or_path);
    }
    int is_jsonl = ends_with(path, ".jsonl"), is_csv = ends_with(path, ".csv");
    if (!is_jsonl && !is_csv)
        return pl_fail(err, PL_ERR_UNSUPPORTED, "%s: not a known dataset name and not a .jsonl or .csv file",
                       name_or_path);
    char *data;
    size_t len;
    int rc = pl_read_file(path, &data, &len, err);
    if (rc) return rc;
    pl_dataset *ds = NULL;
    rc = is_jsonl ? pl_dataset_parse_jsonl(data, len, path, &ds, err) : pl_dataset_parse_csv(data, len, path, &ds, err);
    free(data);
    if (rc) return rc;
    char *nm = strdup(name_or_path);
    if (!nm) {
        pl_dataset_free(ds);
        return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    }
    free(ds->name);
    ds->name = nm;
    *out = ds;
    return PL_OK;
}

int pl_dataset_limit(pl_dataset *ds, size_t n, uint64_t seed, pl_err *err) {
    if (!ds) return pl_fail(err, PL_ERR_ARG, "NULL dataset");
    uint64_t st = seed;
    for (size_t i = ds->n; i > 1; i--) { /* Fisher-Yates from the end */
        size_t j = (size_t)pl_rng_below(&st, i);
        pl_dataset_item t = ds->items[i - 1];
        ds->items[i - 1] = ds->items[j];
        ds->items[j] = t;
    }
    if (n < ds->n) {
        for (size_t i = n; i < ds->n; i++) {
            free(ds->items[i].id);
            free(ds->items[i].text);
            free(ds->items[i].category);
        }
        ds->n = n;
    }
    ds->n_pos = 0;
    for (size_t i = 0; i < ds->n; i++) ds->n_pos += (size_t)ds->items[i].label;
    return PL_OK;
}
