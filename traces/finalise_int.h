/*
 * finalise_int.h: the finaliser's data model, shared by its parts (private to traces/):
 * finalise.c (scanning raw files, merging threads, writing sections) and
 * checkpoint.c (saving a live section's state so that the capture behind it can be
 * given back, and going on from it after heaplab was stopped).
 *
 * A raw file (struct rawfile) is read through a window and scanned into per-thread
 * lists of chunks (struct rthread); each thread has a cursor that decodes its records
 * a batch ahead (struct rec) and takes part in a merge by sequence number (struct
 * heap); a section (struct section) turns the merged records into events through the
 * address map and writes them.
 */
#ifndef HEAPLAB_FINALISE_INT_H
#define HEAPLAB_FINALISE_INT_H

#include "finalise.h"
#include "trace.h"

#include <stddef.h>
#include <stdint.h>

#include "preload/raw.h"

/* Thread numbers in a raw file beyond this are taken as damage. */
#define MAX_RAW_THREADS (1u << 20)
/* A cursor's thread index before its first event. */
#define NO_THREAD UINT32_MAX
/* A raw file's window (struct rawfile) starts this large and doubles when the bytes
 * still needed and the next chunk do not fit. */
#define WINDOW_MIN ((size_t)2 << 20)
/* For tests only: a smaller first window and scan budget (bytes, at least a page), so
 * that a short capture makes the window slide and grow many times. */
#define ENV_WINDOW "HEAPLAB_TEST_WINDOW"

/* A thread's chunk.  Its clock: TSC -> nanoseconds since the image started, linear
 * through the image's start pair and the chunk's own flush pair (chunk_ns).  Taken
 * from the chunk alone, a record's time does not depend on when, or how far into the
 * capture, the finaliser read it; over a chunk's short span the TSC's rate measured
 * since the start is the local one (a constant-rate TSC). */
struct chunkref {
    const uint64_t *words; /* payload */
    size_t nwords;
    uint64_t flush_tsc;    /* TSC when it was flushed: after its last record */
    uint64_t flush_ns;     /* ... and the same moment in ns since the image started */
    double rate;           /* ns per tick since the start (0: the TSC did not grow) */
};

/* One decoded record, as the merge uses it. */
struct rec {
    uint64_t seq, seq0;  /* seq0: realloc's seq-before (== seq when nothing is freed) */
    uint64_t ptr, old;   /* the block returned or freed; realloc's old block */
    size_t hash;         /* ptr's in the address map (hl_slotmap_hash_) */
    uint64_t size, aux;
    uint64_t time;       /* nanoseconds since the image started */
    uint64_t chunk;      /* the thread's chunk it came from (absolute number) */
    uint8_t op, flags;
    uint8_t resumed;     /* a realloc whose old block was taken before a checkpoint */
};

/* Records are decoded a batch at a time into a flat array per thread, and the merge
 * takes a thread's records in runs (as long as no other thread's come between): the
 * per-record work of decoding and of merging stays in two tight loops.  Decoding
 * prefetches the address map's cells the batch will touch: the map is far bigger
 * than the caches, and its misses were most of the finaliser's time. */
#define BATCH 128

struct cursor {
    const struct rthread *t;
    /* decoding (a batch ahead of use) */
    size_t ci;               /* chunks taken so far */
    const uint64_t *p, *end; /* next record, end of the chunk */
    uint64_t last_seq, last_ptr; /* the chunk's running values (raw.h) */
    uint64_t seg_t0;         /* the current run between clock readings: its start TSC, */
    uint64_t seg_k;          /* its records so far, and (set_run, at its start) its */
    uint64_t seg_ns, seg_q, seg_rem; /* times (run_time): start, ns per record, rest */
    int seen;                /* a record was decoded (prev holds its sequence number) */
    uint64_t prev;
    int bad;                 /* a malformed record ends this stream ... */
    const uint64_t *bad_at;  /* ... here */
    struct rec *b;           /* the batch (BATCH records; NULL while there is none) */
    unsigned bi, bn;         /* b[bi] is the current record, b[bi + 1 .. bn) follow */
    /* use */
    uint64_t key;            /* sequence number of the next thing to do */
    int phase;               /* 1: the current record is a realloc whose old block is
                                already taken */
    uint64_t old_slot;
    uint64_t resume_h;       /* records numbered below this were written before the
                                checkpoint this section went on from: skipped */
    uint32_t dense;          /* thread index in the trace, NO_THREAD until its first event */
};

/* The cursor's current record (while it has one: bi < bn). */
static inline const struct rec *cur_rec(const struct cursor *c)
{
    return &c->b[c->bi];
}

/* A thread's chunks and its cursor.  state: 0 waiting for chunks (or not started),
 * 1 in the merge (the heap or the section's current cursor), 2 ended (malformed). */
struct rthread {
    struct chunkref *chunks;
    size_t n, cap;
    size_t dropped;          /* chunks let go before chunks[0] (release) */
    /* A realloc of this thread whose old block left the address map before the
     * checkpoint this section went on from, and whose event was not written yet. */
    uint64_t pend_seq, pend_old_slot;
    struct cursor c;
    int state;
};


/* A process event of a raw file (raw.h: PROCESS CHUNKS). */
struct pev {
    unsigned kind;                /* HL_RAW_PEV_* */
    uint32_t pid;
    uint64_t mono_ns;
    uint64_t off;                 /* its chunk's offset in the raw file (a checkpoint
                                     keeps those below the point it goes on from) */
    char *path;                   /* "" if none */
};

struct rawfile {
    char *path;
    /* While its section is being written, the window: file bytes [win_off, win_off +
     * win_len) read (pread) into a buffer of win_cap bytes, which chunk and cursor
     * pointers point into.  Not a map of the file: mapping pages the program has just
     * written costs a page fault each, a buffer read into again does not
     * (window_read). */
    uint8_t *win;
    size_t win_off;               /* a multiple of the page size */
    size_t win_len, win_cap;
    size_t size;                  /* the file's size when last looked at */
    size_t punched;               /* bytes below this are given back to the disk */
    /* RING (raw.h; rawstream.c): the ring's bytes (0: the file is appended to), and
     * its state as last read.  Offsets in the file (win_off, off, size, ...) are
     * stream offsets: HL_RAW_RING_BASE + x for a ring file's stream offset x. */
    uint64_t ring_bytes, ring_spill, ring_written;
    uint64_t ino;                 /* its inode number, once opened (raw.h: BACKLOG) */
    int hdr;                      /* 0 not read yet, 1 good, -1 skipped */
    int done;                     /* its section is written (or it is skipped) */
    int stopped;                  /* the scan met damage: nothing after it is read */
    int over;                     /* its image is known to be over (see image_over) */
    int started;                  /* its section is begun */
    char *part;                   /* its section, written while the program ran */
    struct hl_raw_header h;
    size_t off;                   /* the next chunk to scan */
    uint32_t *used;               /* the thread numbers seen, in ascending order, */
    struct rthread **thr;         /* and their threads: thr[j] is thread used[j]; */
    uint32_t nused, usedcap;      /* sparse, so that a damaged chunk's huge thread
                                     number costs neither memory nor time */
    uint32_t last;                /* the index thread_of found last (a chunk's thread
                                     is most often its predecessor's) */
    uint64_t horizon;             /* every record below this sequence number is read */
    uint64_t resume_h;            /* going on from a checkpoint: its done key (else 0) */
    int damaged;
    struct pev *pev;              /* its process events, in file order */
    size_t npev, pevcap;
};

/* Min-heap of cursors by key. */
struct heap {
    struct cursor **a;
    size_t n;
};

/* ---- one process section ---- */

struct section {
    struct rawfile *f;
    struct hl_writer *w;
    struct hl_slotmap *map;
    struct heap h;
    size_t hcap;
    struct cursor *cur;   /* the cursor with the smallest key, out of the heap */
    uint32_t room;        /* events that fit before the writer's chunk is full (a
                             checkpoint is taken between chunks; 0: see submit) */
    uint64_t next_slot;
    uint32_t nthreads;    /* dense thread indices handed out */
    uint64_t prev_time;
    uint64_t events, unknown;
    uint64_t done_key;    /* every record numbered below this is written (merge) */
    size_t ckpt_low;      /* the first raw byte still needed at the last checkpoint */
    size_t ckpt_every;    /* raw bytes consumed between checkpoints (0: none) */
    struct hl_pages *pg;  /* HL_RAW_PAGES records made into pairs, given to the writer */
    size_t npg, pgcap;    /* after the events before them (submit) */
};

/* ---- shared between finalise.c and checkpoint.c ---- */

/* Bytes of capture consumed (the first byte still needed moved on by this much)
 * between two checkpoints of a section, at least four times the live address map a
 * checkpoint writes: with the scan's lead, about what the capture holds on disk. */
#define CKPT_EVERY ((size_t)64 << 20)
/* For tests only: checkpoint every this many bytes instead. */
#define ENV_CKPT_EVERY "HEAPLAB_TEST_CHECKPOINT_EVERY"
/* For tests only: while the program runs, read 1 MiB of a capture at a time and sleep
 * this many microseconds after each: a finaliser slower than the program. */
#define ENV_FINALISE_SLOW "HEAPLAB_TEST_FINALISE_SLOW"
/* For tests only: fail, as a full disk would, once this many bytes are read. */
#define ENV_FAIL_AFTER "HEAPLAB_TEST_FINALISE_FAIL_AFTER"
/* For tests only: the trace's assembly (assemble.c) copies windows of this many
 * bytes, and fails after this many windows, as a full disk or a kill would stop it. */
#define ENV_ASM_WINDOW "HEAPLAB_TEST_ASSEMBLY_WINDOW"
#define ENV_ASM_FAIL_AFTER "HEAPLAB_TEST_ASSEMBLY_FAIL_AFTER"

int fz_fail(struct hl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The number in environment variable name (a test hook, ENV_* above), or dflt if unset. */
uint64_t fz_env_u64(const char *name, uint64_t dflt);
/* The file offset of a pointer into f's window. */
static inline size_t file_off(const struct rawfile *f, const void *p)
{
    return (size_t)((const uint8_t *)p - f->win) + f->win_off;
}
/* The first chunk t still needs (an index into t->chunks). */
size_t first_needed(const struct rthread *t);
/* The first byte of f still needed (a chunk header), f->off if none. */
size_t first_needed_byte(const struct rawfile *f);
/* The thread's chunk list and cursor, made on first use.  NULL if out of memory. */
struct rthread *thread_of(struct rawfile *f, uint32_t thread);

/* checkpoint.c: at a chunk boundary of s's writer, if CKPT_EVERY bytes were read since
 * the last one, save s's state beside the raw file (PATH.ckpt) and give the disk
 * space below what the section still needs back to the file system.  Returns 0 / -1. */
int checkpoint_maybe(struct section *s, size_t every, struct hl_err *err);
/* Go on from f's checkpoint, if it has one: restore the state into s (begun on a
 * writer resumed from the part file) and set f's scan to start where the checkpoint
 * says.  Returns 1 if resumed, 0 if there is no checkpoint, -1 (err set) if it is
 * damaged. */
int checkpoint_load(struct rawfile *f, struct hl_writer_state *ws, struct section **sp,
                    struct hl_err *err);
/* For a section finished before heaplab stopped: only the process events f's
 * checkpoint keeps, into f->pev, and *low, where the scan of the rest starts.  1 if
 * there is a checkpoint, 0 if not, -1 on an error. */
int checkpoint_pevs(struct rawfile *f, size_t *low, struct hl_err *err);
/* f's section is finished and its part closed, while the program runs: a checkpoint
 * that keeps only f's process events, then the capture read is given back to the
 * disk (checkpoint.c).  0, or -1 (nothing given back) if the checkpoint could not be
 * written. */
int checkpoint_done(struct rawfile *f, struct hl_err *err);
/* Has f a checkpoint file?  Then its part, if it has one, may be the only copy of its
 * section (the raw capture below the checkpoint given back). */
int checkpoint_exists(const struct rawfile *f);
/* Remove f's checkpoint file, once its section is written whole. */
void checkpoint_remove(const struct rawfile *f);

/* rawstream.c: where a raw file's chunk stream is (raw.h: RING). */

/* After f's header is read (fd open on it): read its ring state, if it has a ring.
 * 0, or -1 if the header says ring and the state is not one. */
int raw_stream_open(struct rawfile *f, int fd);
/* The offset of f's first chunk. */
size_t raw_stream_first(const struct rawfile *f);
/* Where f's stream ends now (*size): the file's size, or the ring's `written`; at the
 * finish (final) as far as a chunk could be.  0, or an errno. */
int raw_stream_size(struct rawfile *f, int final, size_t *size);
/* Offset off is at or past the end a ring file's writer announced: a chunk that does
 * not check there is the end, not damage. */
int raw_stream_past_end(const struct rawfile *f, size_t off);
/* pread of f's stream bytes from off: up to n of them, fewer at the ring's end. */
ssize_t raw_stream_pread(const struct rawfile *f, int fd, void *buf, size_t n, size_t off);
/* What the checksum of the chunk at off is XORed with (0 in an appended file). */
uint64_t raw_stream_salt(const struct rawfile *f, size_t off);
/* Give f's bytes below upto back: a hole, or the ring's room (`released`). */
void raw_stream_release(struct rawfile *f, size_t upto);

/* unrecorded.c: the processes a capture names but holds nothing of, and what the
 * recorded ones lost. */
struct unrec {
    struct hl_process p;          /* flags HL_PROC_UNRECORDED and its reason */
    uint64_t mono_ns;             /* when it was announced (UINT64_MAX: reaped, unknown) */
};
struct unrec_list {
    struct unrec *v;
    size_t n, cap;
};
/* A process chunk's payload (nw words, flushed at mono_ns, at offset off of the raw
 * file) into f->pev.  0, or -1 when out of memory; a malformed one is ignored. */
int unrec_note(struct rawfile *f, const uint64_t *w, size_t nw, uint64_t mono_ns, uint64_t off);
/* One process event into f->pev (path: len bytes, not NUL-terminated).  0 or -1. */
int unrec_push(struct rawfile *f, unsigned kind, uint32_t pid, uint64_t mono_ns, uint64_t off,
               const char *path, size_t len);
void unrec_free(struct rawfile *f);
/* A process heaplab saw end that may have left no raw file. */
int unrec_add(struct unrec_list *u, uint32_t pid, uint32_t ppid, uint64_t realtime_ns,
              unsigned why, const char *exe, const char *cmdline);
/* Make u the list of every unrecorded process, in the order they started: those u
 * holds that left no raw file, and those the files fs[0..n-1] announce.  Once, after
 * every file's header is read.  0 or -1. */
int unrec_gather(struct rawfile *const *fs, size_t n, struct unrec_list *u, struct hl_err *err);
/* A section for each process of u (unrec_gather) into w, counting them in st.  0 or -1. */
int unrec_write(const struct unrec_list *u, struct hl_writer *w, struct hl_finalise_stats *st,
                struct hl_err *err);
/* Count the processes of u in st, as unrec_write does (their sections written before). */
void unrec_count(const struct unrec_list *u, struct hl_finalise_stats *st);

/* ---- assemble.c: the trace of several parts, assembled in the capture folder ---- */

struct asm_state {
    int have;                /* a state was loaded or the assembly has begun */
    int done;                /* the assembly is the whole trace */
    int given;               /* a part that was the only copy of its section was given
                                back: the assembly alone holds those bytes */
    uint64_t n, k, from;     /* parts; parts below k and bytes below from of part k ... */
    uint64_t bytes;          /* ... are the assembly's first bytes */
    uint64_t processes, threads, events; /* what the parts hold */
};
/* The state a stopped assembly left in dir: 1 (*s filled), 0 if there is none, or -1
 * with err set if it is damaged. */
int asm_load(const char *dir, struct asm_state *s, struct hl_err *err);
struct asm_part {
    const char *path;
    int only;                /* the only copy of its section (a checkpoint beside it) */
};
/* The trace out: parts[0..n-1] in order, then a section for each process of u
 * (counted in st), assembled in dir (going on from *s where it has one) and put in
 * place.  st's processes, threads and events must count the parts.  keep: the capture
 * stays after the finish, so its only copies are not given back as they are copied,
 * and the assembly and its state are removed once the trace is placed, unless an only
 * copy was given back before (s->given).  0 or -1. */
int asm_trace(const char *dir, const char *out, const struct asm_part *parts, size_t n,
              const struct unrec_list *u, struct hl_finalise_stats *st, struct asm_state *s,
              int keep, struct hl_err *err);

/* Read f's header again for what its process lost (dropped, missed, cut_errno into
 * f->h).  Returns 1 if its capture was cut (the disk was full). */
int unrec_losses(struct rawfile *f);


#endif
