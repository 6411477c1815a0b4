/*
 * options.c: the allocator's options, one table, read once from HEAPLAB_* environment
 * variables.  Values are numbers with an optional k, m or g suffix (KiB, MiB, GiB).
 *
 * The first allocations of a process can come from the dynamic loader before libc has
 * set up `environ`; then the defaults apply and the table is read again by the library's
 * constructor (override.c), which runs before main.  After that it never changes.
 */
#include "hlm.h"

extern char **environ;

struct hlm_option hlm_options[HLM_OPT_COUNT] = {
#define HLM_OPT_ENTRY(id, env, def, help) [HLM_OPT_##id] = {env, def, false, help},
    HLM_OPTIONS(HLM_OPT_ENTRY)
#undef HLM_OPT_ENTRY
};

/* The defaults as constants, for the two thresholds' values before the options are read. */
enum {
#define HLM_OPT_DEFAULT(id, env, def, help) HLM_DEFAULT_##id = (def),
    HLM_OPTIONS(HLM_OPT_DEFAULT)
#undef HLM_OPT_DEFAULT
};

size_t hlm_mmap_threshold = HLM_DEFAULT_MMAP_THRESHOLD;
size_t hlm_trim_threshold = HLM_DEFAULT_TRIM_THRESHOLD;
static bool options_done;

static bool parse_size(const char *s, size_t *out)
{
    size_t v = 0;
    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (SIZE_MAX - 9) / 10)
            return false;
        v = v * 10 + (size_t)(*s - '0');
    }
    int shift = 0;
    switch (*s) {
    case 'k': case 'K': shift = 10; s++; break;
    case 'm': case 'M': shift = 20; s++; break;
    case 'g': case 'G': shift = 30; s++; break;
    }
    if (*s || (shift && v > (SIZE_MAX >> shift)))
        return false;
    *out = v << shift;
    return true;
}

static const char *env_get(const char *name)
{
    size_t len = strlen(name);
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    return NULL;
}

void hlm_options_read(void)
{
    if (options_done || !environ)
        return;
    options_done = true;
    for (int i = 0; i < HLM_OPT_COUNT; i++) {
        const char *v = env_get(hlm_options[i].name);
        size_t x;
        if (v && parse_size(v, &x)) {
            hlm_options[i].value = x;
            hlm_options[i].set = true;
        }
    }
    size_t t = hlm_opt(HLM_OPT_MMAP_THRESHOLD);
    if (t < HLM_SMALL_MAX + HLM_KIB)   /* small classes never go to mmap */
        t = HLM_SMALL_MAX + HLM_KIB;
    __atomic_store_n(&hlm_mmap_threshold, t, __ATOMIC_RELAXED);
    __atomic_store_n(&hlm_trim_threshold, hlm_opt(HLM_OPT_TRIM_THRESHOLD), __ATOMIC_RELAXED);
}
