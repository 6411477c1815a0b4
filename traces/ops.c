/*
 * ops.c: names and properties of the trace operations (enum hl_op in trace.h).
 */
#include "trace.h"

#include <string.h>

static const char *const op_names[HL_OP_COUNT_] = {
    [HL_OP_MALLOC] = "malloc",
    [HL_OP_CALLOC] = "calloc",
    [HL_OP_REALLOC] = "realloc",
    [HL_OP_FREE] = "free",
    [HL_OP_POSIX_MEMALIGN] = "posix_memalign",
    [HL_OP_ALIGNED_ALLOC] = "aligned_alloc",
    [HL_OP_MEMALIGN] = "memalign",
    [HL_OP_VALLOC] = "valloc",
    [HL_OP_PVALLOC] = "pvalloc",
    [HL_OP_REALLOCARRAY] = "reallocarray",
};

const char *hl_op_name(int op)
{
    if (op <= 0 || op >= HL_OP_COUNT_)
        return NULL;
    return op_names[op];
}

int hl_op_from_name(const char *name)
{
    for (int op = 1; op < HL_OP_COUNT_; op++)
        if (strcmp(op_names[op], name) == 0)
            return op;
    return 0;
}

int hl_op_allocates(int op)
{
    return op > 0 && op < HL_OP_COUNT_ && op != HL_OP_FREE;
}

int hl_op_has_aux(int op)
{
    switch (op) {
    case HL_OP_CALLOC:
    case HL_OP_REALLOCARRAY:
    case HL_OP_POSIX_MEMALIGN:
    case HL_OP_ALIGNED_ALLOC:
    case HL_OP_MEMALIGN:
        return 1;
    default:
        return 0;
    }
}

int hl_op_takes_block(int op)
{
    return op == HL_OP_FREE || op == HL_OP_REALLOC || op == HL_OP_REALLOCARRAY;
}

uint64_t hl_event_bytes(const struct hl_event *e)
{
    if (e->op == HL_OP_CALLOC || e->op == HL_OP_REALLOCARRAY) {
        uint64_t r;
        if (__builtin_mul_overflow(e->size, e->aux, &r))
            return UINT64_MAX;
        return r;
    }
    return e->size;
}

const char *hl_unrecorded_name(unsigned why)
{
    static const char *const names[HL_UNREC_COUNT_] = {
        [HL_UNREC_UNKNOWN] = "unknown",
        [HL_UNREC_STATIC] = "statically linked",
        [HL_UNREC_SETUID] = "setuid or setgid",
        [HL_UNREC_NO_FILE] = "could not create its capture file",
    };
    return why < HL_UNREC_COUNT_ ? names[why] : "unknown";
}
