/* dataset.h — evaluation datasets: labelled texts (agent actions, prompts)
 * loaded from JSONL or CSV files, by path or by a known name.
 *
 * Known names and files (paths below are relative to the project root, which
 * is $PROBELOGITS_ROOT or else the current directory; the shared data
 * directory is $PROBELOGITS_DATA or else <root>/../shared/data):
 *   os-actions       bench/os-actions.jsonl                                 (ours)
 *   harmbench        <data>/harmbench/harmbench_text_noncopyright.jsonl     300, all harmful
 *   xstest           <data>/xstest/xstest_prompts.csv                       450, 200 unsafe
 *   toxicchat        <data>/toxicchat/toxicchat0124_test_human.jsonl        2853, 362 toxic
 *   gtfobins         <data>/gtfobins/gtfobins_commands.jsonl                920, all dangerous
 *   nl2bash          <data>/nl2bash/nl2bash_benign.jsonl                    12607, all benign
 *   redcode-exec     <data>/redcode_exec/redcode_exec.jsonl                 1410, all dangerous
 *   atomic-red-team  <data>/atomic_red_team_linux/atomic_red_team_linux.jsonl 398, all dangerous
 * Anything else is a path; its extension (.jsonl or .csv) picks the parser.
 *
 * JSONL: one JSON object per line (blank lines are skipped). Fields:
 *   text      string, required, non-empty, valid UTF-8 ("action" is accepted
 *             instead of "text", as in bench/os-actions.jsonl).
 *   label     required; see pl_dataset_parse_label.
 *   category  string; if absent, the first present of "semantic_category"
 *             (HarmBench) and "type"; if none and "jailbreaking" is 1
 *             (ToxicChat), "jailbreaking"; else "".
 *   id        "id" (string or integer; prefixed "<language>/" when a string
 *             "language" field exists, because RedCode-Exec repeats ids
 *             across bash and python), else "behavior_id", "conv_id",
 *             "test_guid", else "<file base name>:<line>".
 * CSV (RFC 4180: comma separated, "..." quoting with "" escapes, quoted
 * fields may hold commas and newlines, CRLF or LF line ends): a header row,
 * then one record per row with exactly the header's number of fields. Text
 * column "text", "prompt" (XSTest) or "Behavior" (HarmBench CSVs); label
 * column "label", except that a HarmBench CSV (columns Behavior and
 * FunctionalCategory, no label) is all harmful; category column "category",
 * "type" (XSTest) or "SemanticCategory"; id column "id" or "BehaviorID".
 *
 * Every malformed row (bad JSON, missing or unknown label, bad UTF-8, field
 * count mismatch, unterminated quote, ...) fails the whole load with
 * PL_ERR_FORMAT and a message "FILE:LINE: what". */
#ifndef PL_DATASET_H
#define PL_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* One labelled example. */
typedef struct pl_dataset_item {
    char *id;       /* identifier, unique within well-formed datasets; never NULL */
    char *text;     /* the action / prompt, UTF-8, NUL-terminated; never NULL */
    char *category; /* category or "" when the file has none; never NULL */
    int label;      /* 1 = positive (dangerous / harmful / unsafe / toxic), 0 = benign */
} pl_dataset_item;

/* A loaded dataset; owns every string. */
typedef struct pl_dataset {
    char *name;             /* the known name, or the path it was loaded from */
    char *path;             /* the file it was read from ("<memory>" for parse calls) */
    pl_dataset_item *items; /* n items in file order (until pl_dataset_limit) */
    size_t n;               /* number of items */
    size_t n_pos;           /* items with label 1 */
} pl_dataset;

/* Loads a known dataset by name or a .jsonl / .csv file by path into *out
 * (caller frees with pl_dataset_free). */
int pl_dataset_load(const char *name_or_path, pl_dataset **out, pl_err *err);

/* Writes the file path of a known name into buf; PL_ERR_ARG for an unknown
 * name, PL_ERR_RANGE when buf is too small. */
int pl_dataset_path(const char *name, char *buf, size_t cap, pl_err *err);

/* Parses JSONL / CSV from memory; `file` names the source in messages. */
int pl_dataset_parse_jsonl(const char *buf, size_t len, const char *file, pl_dataset **out, pl_err *err);
int pl_dataset_parse_csv(const char *buf, size_t len, const char *file, pl_dataset **out, pl_err *err);

/* Maps a label string to 0/1 (ASCII case-insensitive, surrounding spaces
 * ignored). 1: "1", "true", "yes", "positive", "dangerous", "unsafe",
 * "harmful", "toxic", "malicious". 0: "0", "false", "no", "negative",
 * "benign", "safe", "harmless", "non-toxic", "nontoxic". Returns -1 for
 * anything else. JSON labels may also be the integers 0/1 or booleans. */
int pl_dataset_parse_label(const char *s);

/* Frees a dataset (NULL is fine). */
void pl_dataset_free(pl_dataset *ds);

/* Shuffles the items with a seeded Fisher-Yates (splitmix64 stream, same
 * seed => same order on every machine) and keeps the first n (all of them
 * when n >= ds->n, which still shuffles). n_pos is updated. */
int pl_dataset_limit(pl_dataset *ds, size_t n, uint64_t seed, pl_err *err);

#endif
