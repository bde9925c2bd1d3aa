/* What the task reader's BPF program (taskiter.bpf.c) and the agent
 * (taskiter.c) share: the layout of one watched process's sums. Plain
 * <linux/types.h> types, so both compilers read it the same. */
#ifndef LOADEASE_AGENT_TASKITER_ABI_H
#define LOADEASE_AGENT_TASKITER_ABI_H

#include <linux/types.h>

/* processes one agent can watch this way (more are read from /proc) */
#define TASKITER_MAX 4096
/* the tgids the bitmap of watched processes covers (Linux's PID_MAX_LIMIT);
 * a tgid above it is looked up in the hash map alone */
#define TASKITER_PID_LIMIT (4u * 1024 * 1024)

#define TASKITER_HAS_LEADER 1u /* the thread-group leader was seen */
#define TASKITER_HAS_BYTES  2u /* read/write_bytes are kept (CONFIG_TASK_IO_ACCOUNTING) */

struct taskiter_acc {
	__u32 threads; /* threads seen in the last pass; 0: not found */
	__u32 flags;
	__u64 runtime_ns;
	__u64 rchar, wchar, syscr, syscw, read_bytes, write_bytes, cancelled_write_bytes;
};

#endif
