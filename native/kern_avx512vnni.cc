// avx512vnni build of the vector kernels (compiled with this ISA's -m flags; called only after cpuid).
#define Q8_W 512
#define Q8_VNNI 1
#define Q8_NS ns_avx512vnni
#define Q8_NAME "avx512vnni"
#define Q8_TABLE kern_avx512vnni
#include "kern_impl.h"
