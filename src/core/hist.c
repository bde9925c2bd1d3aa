#include "core/hist.h" /* placeholder: being written */
