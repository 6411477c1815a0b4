/*
 * record.h: the pieces of `heaplab record` shared by its two ways of recording, running
 * a program (record.c) and attaching to a running one (record_attach.c).
 */
#ifndef HEAPLAB_RECORD_H
#define HEAPLAB_RECORD_H

struct hl_finaliser;

/* The capture directory, absolute: `capture` or, without it, out + ".capture"
 * (created; must hold no capture yet).  Dies on failure. */
char *hl_capture_dir(const char *capture, const char *out);

/* Did any process write a raw file into dir? */
int hl_has_capture(const char *dir);

/* Remove a capture directory and the files in it. */
void hl_remove_capture(const char *dir);

/* Finalise the capture in dir into out (what fz has not done yet, if given) and print
 * the summary line unless quiet; exited: when the program exited (then the line says
 * how long finalising took after that), 0 if not run; keep: the capture stays after
 * success (hl_finaliser_keep_capture).  On failure the capture is kept and the message
 * says where and how to go on.  Returns 0 / -1. */
int hl_record_finalise(struct hl_finaliser *fz, const char *dir, const char *out, int quiet,
                       double exited, int keep);

/* `heaplab record -p PID`: attach, record until stopped, detach, finalise (see
 * record_attach.c).  Returns the exit status. */
int hl_record_attach(long pid, const char *out, long duration, const char *capture,
                     int quiet);

/* Processes heaplab reaped (record_unseen.c): note one before reaping it; at the end,
 * hand them to the finaliser, which writes a section naming each that left no raw
 * file (main: the program heaplab started, whose file is prog). */
#include <sys/types.h>
struct hl_unseen;
struct hl_finaliser;
struct hl_unseen *hl_unseen_new(void);
void hl_unseen_free(struct hl_unseen *u);
void hl_unseen_note(struct hl_unseen *u, pid_t pid);
void hl_unseen_hand_over(const struct hl_unseen *u, struct hl_finaliser *fz, pid_t main,
                         const char *prog);
/* Name on stderr every process the finalised trace holds no events of (st). */
struct hl_finalise_stats;
void hl_unseen_warn(const struct hl_finalise_stats *st);

#endif
