#include "agent/procfs.h" /* placeholder: being written */
