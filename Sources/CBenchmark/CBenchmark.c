#include "CBenchmark.h"
int rmqb_placeholder(void) { return 0; }
