#include <cblas.h>
// OpenBLAS extensions (declared in openblas_config.h / cblas.h of the pthread build).
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
// The kernel family OpenBLAS's DYNAMIC_ARCH build chose for this CPU ("Haswell", "SkylakeX", "Prescott"…).
char *openblas_get_corename(void);

/* Not OpenBLAS: a cache prefetch hint for the decode attention's next key/value block (Swift has no
   spelling for it). Reads, keep in all cache levels. */
static inline void dots_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
