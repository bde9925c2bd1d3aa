#include "core/ring.h" /* placeholder: being written */
