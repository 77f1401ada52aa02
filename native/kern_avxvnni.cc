// avxvnni build of the vector kernels (compiled with this ISA's -m flags; called only after cpuid).
#define Q8_W 256
#define Q8_VNNI 1
#define Q8_NS ns_avxvnni
#define Q8_NAME "avxvnni"
#define Q8_TABLE kern_avxvnni
#include "kern_impl.h"
