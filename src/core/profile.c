#include "core/profile.h" /* placeholder: being written */
