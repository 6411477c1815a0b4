/*
 * json.h: the JSON tree `heaplab plot` reads its inputs into (cmd/plot/json.c).
 *
 * Scalars keep their spelling (numbers as written, booleans as "1"/"0") so that callers
 * decide how strict to be; every error ends the program with one line naming the file
 * and the line.
 */
#ifndef HEAPLAB_PLOT_JSON_H
#define HEAPLAB_PLOT_JSON_H

#include <stddef.h>

enum hl_json_type { HL_JSON_NULL, HL_JSON_BOOL, HL_JSON_NUM, HL_JSON_STR, HL_JSON_ARR,
                    HL_JSON_OBJ };

struct hl_json {
    enum hl_json_type t;
    int line;                /* where the value starts, for messages */
    char *s;                 /* HL_JSON_STR text, HL_JSON_NUM/HL_JSON_BOOL spelling */
    int n;                   /* HL_JSON_ARR/HL_JSON_OBJ element count */
    char **keys;             /* HL_JSON_OBJ */
    struct hl_json **items;  /* HL_JSON_ARR/HL_JSON_OBJ */
};

/* The whole file as a NUL-terminated string (dies on a folder, read error or NUL byte). */
char *hl_plot_slurp(const char *path, size_t *len);

/* Parse one JSON document; dies with "FILE:LINE: what" on malformed text. */
struct hl_json *hl_json_parse(const char *file, const char *text);
/* The member key of an object, or NULL (also when o is NULL or not an object). */
const struct hl_json *hl_json_get(const struct hl_json *o, const char *key);
void hl_json_free(struct hl_json *v);

#endif
