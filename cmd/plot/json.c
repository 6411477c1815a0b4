/*
 * json.c: the small JSON reader `heaplab plot` uses for replay's results and for
 * `heaplab stat --json` output.
 *
 * Input is untrusted: a recursive-descent parser into a tree (depth limited, strings
 * checked), and every malformed document ends in one line "heaplab: FILE:LINE: what is
 * wrong" and exit 1, never a crash.
 */
#include "json.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


char *hl_plot_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        hl_die("%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode))
        hl_die("%s: is a directory, not a results, timeline or stat file", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = hl_xrealloc(NULL, cap);
    size_t k;
    while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n < 2)
            buf = hl_xrealloc(buf, cap *= 2);
    }
    int err = ferror(f);
    fclose(f);
    if (err)
        hl_die("%s: read error", path);
    buf[n] = 0;
    if (memchr(buf, 0, n))
        hl_die("%s: binary data (a NUL byte), not CSV or JSON", path);
    *len = n;
    return buf;
}

struct jparser {
    const char *file, *p;
    int line, depth;
};

__attribute__((noreturn)) static void jfail(struct jparser *j, const char *what)
{
    hl_die("%s:%d: %s", j->file, j->line, what);
}

static void jspace(struct jparser *j)
{
    for (;;) {
        if (*j->p == '\n')
            j->line++;
        else if (*j->p != ' ' && *j->p != '\t' && *j->p != '\r')
            return;
        j->p++;
    }
}

static void put_utf8(char **d, unsigned cp)
{
    unsigned char *o = (unsigned char *)*d;
    if (cp < 0x80) {
        *o++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *o++ = (unsigned char)(0xc0 | cp >> 6);
        *o++ = (unsigned char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (unsigned char)(0xe0 | cp >> 12);
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (unsigned char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (unsigned char)(0xf0 | cp >> 18);
        *o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (unsigned char)(0x80 | (cp & 0x3f));
    }
    *d = (char *)o;
}

static unsigned hex4(struct jparser *j)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = *j->p++;
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            v |= (unsigned)(ch - 'A' + 10);
        else
            jfail(j, "bad \\u escape in a string");
    }
    return v;
}

static char *jstring(struct jparser *j)
{
    /* The decoded text is never longer than the source. */
    const char *q = ++j->p;
    size_t cap = 16;
    while (*q && *q != '"') {
        if (*q == '\\' && q[1])
            q++;
        q++;
        cap++;
    }
    char *out = hl_xrealloc(NULL, cap + 8), *d = out;
    for (;;) {
        char ch = *j->p;
        if (!ch)
            jfail(j, "unterminated string");
        if ((unsigned char)ch < 0x20)
            jfail(j, "control character inside a string");
        j->p++;
        if (ch == '"')
            break;
        if (ch != '\\') {
            *d++ = ch;
            continue;
        }
        ch = *j->p++;
        switch (ch) {
        case '"': case '\\': case '/': *d++ = ch; break;
        case 'b': *d++ = '\b'; break;
        case 'f': *d++ = '\f'; break;
        case 'n': *d++ = '\n'; break;
        case 'r': *d++ = '\r'; break;
        case 't': *d++ = '\t'; break;
        case 'u': {
            unsigned cp = hex4(j);
            if (cp >= 0xd800 && cp < 0xdc00 && j->p[0] == '\\' && j->p[1] == 'u') {
                j->p += 2;
                unsigned lo = hex4(j);
                if (lo >= 0xdc00 && lo < 0xe000)
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0)
                jfail(j, "NUL character inside a string");
            put_utf8(&d, cp);
            break;
        }
        default:
            jfail(j, "bad escape in a string");
        }
    }
    *d = 0;
    return out;
}

static struct hl_json *jvalue(struct jparser *j)
{
    jspace(j);
    if (++j->depth > 64)
        jfail(j, "nested too deeply");
    struct hl_json *v = hl_xrealloc(NULL, sizeof *v);
    memset(v, 0, sizeof *v);
    v->line = j->line;
    char ch = *j->p;
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        v->t = ch == '{' ? HL_JSON_OBJ : HL_JSON_ARR;
        j->p++;
        jspace(j);
        if (*j->p == close) {
            j->p++;
        } else {
            for (;;) {
                v->items = hl_xrealloc(v->items, (size_t)(v->n + 1) * sizeof *v->items);
                if (v->t == HL_JSON_OBJ) {
                    v->keys = hl_xrealloc(v->keys, (size_t)(v->n + 1) * sizeof *v->keys);
                    jspace(j);
                    if (*j->p != '"')
                        jfail(j, "expected a string key");
                    v->keys[v->n] = jstring(j);
                    jspace(j);
                    if (*j->p != ':')
                        jfail(j, "expected ':' after a key");
                    j->p++;
                }
                v->items[v->n++] = jvalue(j);
                jspace(j);
                if (*j->p == ',') {
                    j->p++;
                    continue;
                }
                if (*j->p == close) {
                    j->p++;
                    break;
                }
                jfail(j, v->t == HL_JSON_OBJ ? "expected ',' or '}'" : "expected ',' or ']'");
            }
        }
    } else if (ch == '"') {
        v->t = HL_JSON_STR;
        v->s = jstring(j);
    } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
        char *end;
        errno = 0;
        double d = strtod(j->p, &end);
        if (end == j->p || !isfinite(d))
            jfail(j, "bad number");
        v->t = HL_JSON_NUM;
        v->s = hl_xrealloc(NULL, (size_t)(end - j->p) + 1);
        memcpy(v->s, j->p, (size_t)(end - j->p));
        v->s[end - j->p] = 0;
        j->p = end;
    } else if (strncmp(j->p, "true", 4) == 0 || strncmp(j->p, "false", 5) == 0) {
        v->t = HL_JSON_BOOL;
        v->s = hl_xstrdup(ch == 't' ? "1" : "0");
        j->p += ch == 't' ? 4 : 5;
    } else if (strncmp(j->p, "null", 4) == 0) {
        v->t = HL_JSON_NULL;
        j->p += 4;
    } else {
        jfail(j, ch ? "expected a JSON value" : "unexpected end of file");
    }
    j->depth--;
    return v;
}

void hl_json_free(struct hl_json *v)
{
    if (!v)
        return;
    for (int i = 0; i < v->n; i++) {
        if (v->keys)
            free(v->keys[i]);
        hl_json_free(v->items[i]);
    }
    free(v->keys);
    free(v->items);
    free(v->s);
    free(v);
}

const struct hl_json *hl_json_get(const struct hl_json *o, const char *key)
{
    if (!o || o->t != HL_JSON_OBJ)
        return NULL;
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return o->items[i];
    return NULL;
}


struct hl_json *hl_json_parse(const char *file, const char *text)
{
    struct jparser j = {.file = file, .p = text, .line = 1};
    struct hl_json *doc = jvalue(&j);
    jspace(&j);
    if (*j.p)
        jfail(&j, "text after the JSON document");
    return doc;
}
