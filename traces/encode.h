/*
 * encode.h: one event into a chunk's columns (format.h, CHNK payload), the writer's
 * encoder (private to traces/).  writer.c encodes through it (hl_writer_event,
 * hl_writer_events); the record finaliser encodes through it directly, a record at a
 * time as it makes the event (hl_writer_enc), with no array of events between.
 *
 * The encoder's state (struct enc) is a copy a caller may hold in registers through a
 * loop and store back; the column bytes it writes are the writer's buffers.
 * hl_enc_event() is inline with the modes as arguments, so that a loop specialised for
 * each mode combination (HL_ENC_BY_MODES) has no tests of them.
 */
#ifndef HEAPLAB_ENCODE_H
#define HEAPLAB_ENCODE_H
#include "codec.h"
#include "format.h"
#include "trace.h"
#include <stdint.h>

/* What encoding an event reads and changes: kept together so that an encoding loop
 * (the writer's hl_writer_events, the finaliser's run) can hold it in registers, apart
 * from the column bytes it writes (a store through a byte pointer may alias anything
 * in memory). */
struct enc {
    uint8_t *colp[HL_NCOLS]; /* the columns' ends (mode 0) */
    uint8_t *altp[HL_NCOLS]; /* the mode-1 alternatives' ends */
    uint64_t nevents;        /* of the section */
    uint64_t next_slot;
    uint64_t prev_time;
    uint64_t prev_ref;       /* REF mode 1's prediction */
    int64_t prev_dt;         /* TIME mode 1's prediction */
    uint32_t prev_thread;
    uint32_t nthreads;
    uint32_t chunk_n;        /* events in the chunk being filled */
};

/* Op properties for the encoder: bit 0 takes a block, bit 1 allocates, bit 2 has aux. */
static const uint8_t hl_enc_op_bits[16] = {
    [HL_OP_MALLOC] = 2,
    [HL_OP_CALLOC] = 2 | 4,
    [HL_OP_REALLOC] = 1 | 2,
    [HL_OP_FREE] = 1,
    [HL_OP_POSIX_MEMALIGN] = 2 | 4,
    [HL_OP_ALIGNED_ALLOC] = 2 | 4,
    [HL_OP_MEMALIGN] = 2 | 4,
    [HL_OP_VALLOC] = 2,
    [HL_OP_PVALLOC] = 2,
    [HL_OP_REALLOCARRAY] = 1 | 2 | 4,
};

/* The slot event e gives back (a trusted producer's: the fields are right). */
static inline uint64_t hl_enc_ref(const struct hl_event *e)
{
    return e->op == HL_OP_FREE ? e->slot : (hl_enc_op_bits[e->op] & 1) ? e->old_slot : HL_NO_SLOT;
}

/* Encode e, giving back slot ref (format.h, CHNK payload), into the columns s points
 * to, REF and TIME as mode 0 and/or mode 1 (want0, want1: a trial chunk writes both).
 * e->op is known (1 .. HL_OP_COUNT_ - 1).  The caller counts it (nevents, chunk_n) and
 * its thread (nthreads: here only where the thread changes, see hl_enc_count). */
static inline __attribute__((always_inline)) void
hl_enc_event(struct enc *s, const struct hl_event *e, uint64_t ref, unsigned want0, unsigned want1)
{
    int op = e->op;
    int takes = hl_enc_op_bits[op] & 1, allocates = hl_enc_op_bits[op] & 2;
    uint8_t opf = (uint8_t)(op | e->flags << 4);
    if (takes && ref == HL_NO_SLOT && !(e->flags & HL_EV_UNKNOWN))
        opf |= HL_OPF_NOREF;
    if (e->thread != s->prev_thread) {
        opf |= HL_OPF_THREAD;
        s->colp[HL_COL_THREAD] = hl_put_varint(s->colp[HL_COL_THREAD], e->thread);
        s->prev_thread = e->thread;
        if (e->thread + 1 > s->nthreads)
            s->nthreads = e->thread + 1;
    }
    *s->colp[HL_COL_OPF]++ = opf;
    if (op != HL_OP_FREE) {
        *s->colp[HL_COL_SIZE_LO]++ = (uint8_t)e->size;
        s->colp[HL_COL_SIZE_HI] = hl_put_varint(s->colp[HL_COL_SIZE_HI], e->size >> 8);
    }
    if (hl_enc_op_bits[op] & 4)
        s->colp[HL_COL_AUX] = hl_put_varint(s->colp[HL_COL_AUX], e->aux);
    if (ref != HL_NO_SLOT) {
        if (want0 & HL_MODE_REF_PREV)
            s->colp[HL_COL_REF] = hl_put_varint(s->colp[HL_COL_REF], s->next_slot - 1 - ref);
        if (want1 & HL_MODE_REF_PREV)
            s->altp[HL_COL_REF] =
                hl_put_varint(s->altp[HL_COL_REF], hl_zigzag((int64_t)ref - (int64_t)s->prev_ref));
        s->prev_ref = ref;
    }
    /* TIME mode 0 stores the step, mode 1 the change of step (wrapping arithmetic, so
     * any sequence of times round-trips). */
    int64_t dt = (int64_t)(e->time_ns - s->prev_time);
    int64_t ddt = (int64_t)((uint64_t)dt - (uint64_t)s->prev_dt);
    s->prev_dt = dt;
    if (want0 & HL_MODE_TIME_DD) {
        *s->colp[HL_COL_TIME_LO]++ = (uint8_t)dt;
        s->colp[HL_COL_TIME_HI] = hl_put_varint(s->colp[HL_COL_TIME_HI], hl_zigzag(dt >> 8));
    }
    if (want1 & HL_MODE_TIME_DD) {
        uint64_t zdt = hl_zigzag(ddt); /* changes go either way: zigzag before the split */
        *s->altp[HL_COL_TIME_LO]++ = (uint8_t)zdt;
        s->altp[HL_COL_TIME_HI] = hl_put_varint(s->altp[HL_COL_TIME_HI], zdt >> 8);
    }
    s->prev_time = e->time_ns;
    /* A realloc that failed keeps its old block and takes no slot. */
    if (allocates && !(e->flags & HL_EV_FAILED))
        s->next_slot++;
}

/* Count n events just encoded: every thread among them was either the chunk's
 * previous thread when it came, counted where it changed (hl_enc_event), or the thread
 * before the chunk's first event (0). */
static inline void hl_enc_count(struct enc *s, size_t n)
{
    if (n && s->prev_thread + 1 > s->nthreads)
        s->nthreads = s->prev_thread + 1;
    s->nevents += n;
    s->chunk_n += (uint32_t)n;
}

/* CALL(W0, W1) with the modes want0, want1 (want0_of/want1_of in writer.c, or
 * hl_writer_enc's) as constants: one specialised copy of an encoding loop per mode
 * combination, free of their tests. */
#define HL_ENC_BY_MODES(want0, want1, CALL)                                               \
    ((want0) == 3 && (want1) == 3         ? CALL(3, 3)                                      \
     : !(want1)                           ? CALL(3, 0)                                      \
     : (want1) == HL_MODE_REF_PREV        ? CALL(HL_MODE_TIME_DD, HL_MODE_REF_PREV)         \
     : (want1) == HL_MODE_TIME_DD         ? CALL(HL_MODE_REF_PREV, HL_MODE_TIME_DD)         \
                                          : CALL(0, 3))

/* Direct encoding (the finaliser's): the writer's encoder state, and the modes of the
 * chunk being filled (hl_enc_event's want0 and want1), for a trusted writer inside a
 * section.  The caller encodes at most hl_writer_room events, counts them (hl_enc_count),
 * stores its copy of the state back, then calls hl_writer_enc_done. */
struct enc *hl_writer_enc(struct hl_writer *w, unsigned *want0, unsigned *want1);
/* After direct encoding: write the chunk out if it is full.  0, or -1 with err set. */
int hl_writer_enc_done(struct hl_writer *w, struct hl_err *err);

#endif
