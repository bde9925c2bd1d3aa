/* taskiter.h - the CPU time and I/O counters of every watched process from
 * one pass of a BPF task iterator: three system calls per sample for all
 * VMs, where /proc costs two per VM (the process CPU clock and
 * /proc/<pid>/io) and the kernel's /proc path around each.
 *
 * The sums are the kernel's own for a whole process (taskiter.bpf.c says
 * which fields), so a VM's figures do not change with the reader; a
 * process found in a pass has threads > 0 in its slot.
 *
 * Needs a build with libbpf (meson -Dbpf), Linux 5.8 or later with BTF
 * (/sys/kernel/btf/vmlinux), CAP_BPF and CAP_PERFMON (or root), and the
 * host's PID namespace (the kernel's pids are /proc's). taskiter_open()
 * says which one is missing.
 */
#ifndef LE_AGENT_TASKITER_H
#define LE_AGENT_TASKITER_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/taskiter_abi.h"

struct taskiter;

/* Loads and attaches the program. 0, or a negative errno with the reason in
 * err (-ENOTSUP: built without libbpf, or not in the host's PID namespace). */
int taskiter_open(struct taskiter **out, char *err, size_t cap);
/* Accepts NULL. */
void taskiter_free(struct taskiter *t);

/* Watches pid (a process, by its thread-group id) from the next pass on:
 * its slot, or -1 when all TASKITER_MAX slots are taken or the kernel
 * refused. */
int taskiter_watch(struct taskiter *t, int pid);
void taskiter_unwatch(struct taskiter *t, int pid, int slot);

/* One pass over every task: the sums of every watched process. 0 or a
 * negative errno (the sums are then all zero: nothing found). */
int taskiter_run(struct taskiter *t);

/* The sums of slot from the last pass. */
const struct taskiter_acc *taskiter_get(const struct taskiter *t, int slot);

#endif
