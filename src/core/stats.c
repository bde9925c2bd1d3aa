#include "core/stats.h" /* placeholder: being written */
