/* torchsort.h - torch's CPU sort and topk orders, ties included (not public).
 *
 * torch.sort (stable=False) and torch.topk on CPU run libstdc++'s std::sort,
 * std::partial_sort and std::nth_element over (value, index) pairs, comparing
 * values only (descending: a before b when a is NaN and b is not, or a > b;
 * ascending: a < b, NaN last). Where values tie, the order those algorithms
 * leave is what torch returns. torchsort.c ports those libstdc++ algorithms
 * step for step so that logitscope puts tied tokens in torch's order. */
#ifndef LSC_TORCHSORT_H
#define LSC_TORCHSORT_H

#include <stddef.h>
#include <stdint.h>

typedef struct lsc_pair {
    float v;
    int32_t i;
} lsc_pair;

/* std::sort over q[n] with torch's comparators: torch.sort(descending=True)
 * and torch.sort(descending=False), stable=False. */
void lsc_std_sort_desc(lsc_pair *q, size_t n);
void lsc_std_sort_asc(lsc_pair *q, size_t n);

/* torch.topk(largest=True, sorted=True) over q[n] (filled with (x[j], j)):
 * afterwards q[0..k) holds the k largest in torch's order. k <= n. */
void lsc_torch_topk(lsc_pair *q, size_t n, size_t k);

#endif
