/*
 * cmd.h: the subcommands of the heaplab executable.
 *
 * Each subcommand lives in cmd/<name>.c with one entry point cmd_<name>(argc, argv),
 * where argv[0] is the subcommand's name.  It parses its own options with the table
 * helpers in options.h and does orchestration only; the work is done by the modules
 * under traces/, allocators/ and cmd/replay/.
 *
 * Exit status convention: 0 success, 1 failure (bad input, I/O error, a failed
 * measurement), 2 usage error.  `record` instead returns the recorded program's status.
 */
#ifndef HEAPLAB_CMD_H
#define HEAPLAB_CMD_H

int cmd_record(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_allocators(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_diff(int argc, char **argv);

/* Worker entry: heaplab re-executes itself as `heaplab __worker ...` for each
 * allocator under test (see cmd/replay/).  Not listed in help. */
int cmd_worker(int argc, char **argv);

#endif
