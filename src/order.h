/* order.h - the one order "a comes before b" of a descending sort, shared by
 * inspection (argmax) and sampling (the top-k cut, draws without
 * replacement), so both agree on ties and NaN. Private to the library. */
#ifndef LSC_ORDER_H
#define LSC_ORDER_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>

/* True when value a (at index ia) sorts before value b (at index ib) in a
 * stable descending sort: larger first, NaN first of all (as torch), ties by
 * lower index. The order of argmax, of the sampler's top-k cut (where only
 * the k-th value matters) and of draws without replacement; lsc_top_k and
 * lsc_rank follow torch's own tie order (torchsort.c). */
static inline bool lsc_before(double a, size_t ia, double b, size_t ib) {
    if (isnan(a)) return !isnan(b) || ia < ib;
    if (isnan(b)) return false;
    return a > b || (a == b && ia < ib);
}

#endif
