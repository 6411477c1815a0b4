/* placeholder: the trace library lands with the record issue */
#include "trace.h"
