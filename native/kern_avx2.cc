// avx2 build of the vector kernels (compiled with this ISA's -m flags; called only after cpuid).
#define Q8_W 256
#define Q8_VNNI 0
#define Q8_NS ns_avx2
#define Q8_NAME "avx2"
#define Q8_TABLE kern_avx2
#include "kern_impl.h"
