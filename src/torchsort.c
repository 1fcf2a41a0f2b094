/* torchsort.c - ports of libstdc++'s std::sort, std::partial_sort and
 * std::nth_element (bits/stl_algo.h, bits/stl_heap.h), step for step, so that
 * ties come out in the order torch.sort and torch.topk give on CPU (see
 * torchsort.h). Positions are indices into one array q; "first", "last" and
 * so on keep libstdc++'s names. */
#include "torchsort.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>

typedef ptrdiff_t idx;

/* torch's comparators (KeyValueCompDesc / KeyValueCompAsc): descending puts
 * NaN first, then larger values; ascending puts smaller values first and NaN
 * last. Ties are "not before" either way. */
static inline bool comp(bool asc, lsc_pair a, lsc_pair b) {
    if (asc) return (!isnan(a.v) && isnan(b.v)) || a.v < b.v;
    return (isnan(a.v) && !isnan(b.v)) || a.v > b.v;
}

static inline void iter_swap(lsc_pair *q, idx a, idx b) {
    lsc_pair t = q[a];
    q[a] = q[b];
    q[b] = t;
}

/* floor(log2(n)) for n > 0: std::__lg */
static idx lg(idx n) { return 63 - __builtin_clzll((unsigned long long)n); }

/* ---- heaps (stl_heap.h), over base[0..len) ---- */

static void push_heap(bool asc, lsc_pair *base, idx hole, idx top, lsc_pair value) {
    idx parent = (hole - 1) / 2;
    while (hole > top && comp(asc, base[parent], value)) {
        base[hole] = base[parent];
        hole = parent;
        parent = (hole - 1) / 2;
    }
    base[hole] = value;
}

static void adjust_heap(bool asc, lsc_pair *base, idx hole, idx len, lsc_pair value) {
    idx top = hole, second = hole;
    while (second < (len - 1) / 2) {
        second = 2 * (second + 1);
        if (comp(asc, base[second], base[second - 1])) second--;
        base[hole] = base[second];
        hole = second;
    }
    if ((len & 1) == 0 && second == (len - 2) / 2) {
        second = 2 * (second + 1);
        base[hole] = base[second - 1];
        hole = second - 1;
    }
    push_heap(asc, base, hole, top, value);
}

static void make_heap(bool asc, lsc_pair *base, idx len) {
    if (len < 2) return;
    for (idx parent = (len - 2) / 2;; parent--) {
        adjust_heap(asc, base, parent, len, base[parent]);
        if (parent == 0) return;
    }
}

/* __pop_heap(first, first + len, first + result) */
static void pop_heap(bool asc, lsc_pair *base, idx len, idx result) {
    lsc_pair value = base[result];
    base[result] = base[0];
    adjust_heap(asc, base, 0, len, value);
}

static void heap_select(bool asc, lsc_pair *q, idx first, idx middle, idx last) {
    make_heap(asc, q + first, middle - first);
    for (idx i = middle; i < last; i++)
        if (comp(asc, q[i], q[first])) pop_heap(asc, q + first, middle - first, i - first);
}

static void sort_heap(bool asc, lsc_pair *q, idx first, idx last) {
    while (last - first > 1) {
        last--;
        pop_heap(asc, q + first, last - first, last - first);
    }
}

static void partial_sort(bool asc, lsc_pair *q, idx first, idx middle, idx last) {
    heap_select(asc, q, first, middle, last);
    sort_heap(asc, q, first, middle);
}

/* ---- introsort / introselect (stl_algo.h) ---- */

static void move_median_to_first(bool asc, lsc_pair *q, idx result, idx a, idx b, idx c) {
    if (comp(asc, q[a], q[b])) {
        if (comp(asc, q[b], q[c])) iter_swap(q, result, b);
        else if (comp(asc, q[a], q[c])) iter_swap(q, result, c);
        else iter_swap(q, result, a);
    } else if (comp(asc, q[a], q[c])) iter_swap(q, result, a);
    else if (comp(asc, q[b], q[c])) iter_swap(q, result, c);
    else iter_swap(q, result, b);
}

static idx unguarded_partition(bool asc, lsc_pair *q, idx first, idx last, idx pivot) {
    for (;;) {
        while (comp(asc, q[first], q[pivot])) first++;
        last--;
        while (comp(asc, q[pivot], q[last])) last--;
        if (!(first < last)) return first;
        iter_swap(q, first, last);
        first++;
    }
}

static idx unguarded_partition_pivot(bool asc, lsc_pair *q, idx first, idx last) {
    idx mid = first + (last - first) / 2;
    move_median_to_first(asc, q, first, first + 1, mid, last - 1);
    return unguarded_partition(asc, q, first + 1, last, first);
}

static void unguarded_linear_insert(bool asc, lsc_pair *q, idx last) {
    lsc_pair val = q[last];
    idx next = last - 1;
    while (comp(asc, val, q[next])) {
        q[last] = q[next];
        last = next;
        next--;
    }
    q[last] = val;
}

static void insertion_sort(bool asc, lsc_pair *q, idx first, idx last) {
    if (first == last) return;
    for (idx i = first + 1; i != last; i++) {
        if (comp(asc, q[i], q[first])) {
            lsc_pair val = q[i];
            for (idx j = i; j > first; j--) q[j] = q[j - 1]; /* move_backward */
            q[first] = val;
        } else {
            unguarded_linear_insert(asc, q, i);
        }
    }
}

enum { S_THRESHOLD = 16 };

static void final_insertion_sort(bool asc, lsc_pair *q, idx first, idx last) {
    if (last - first > S_THRESHOLD) {
        insertion_sort(asc, q, first, first + S_THRESHOLD);
        for (idx i = first + S_THRESHOLD; i != last; i++) unguarded_linear_insert(asc, q, i);
    } else {
        insertion_sort(asc, q, first, last);
    }
}

static void introsort_loop(bool asc, lsc_pair *q, idx first, idx last, idx depth_limit) {
    while (last - first > S_THRESHOLD) {
        if (depth_limit == 0) {
            partial_sort(asc, q, first, last, last);
            return;
        }
        depth_limit--;
        idx cut = unguarded_partition_pivot(asc, q, first, last);
        introsort_loop(asc, q, cut, last, depth_limit);
        last = cut;
    }
}

/* std::sort(q + first, q + last) */
static void std_sort(bool asc, lsc_pair *q, idx first, idx last) {
    if (first == last) return;
    introsort_loop(asc, q, first, last, lg(last - first) * 2);
    final_insertion_sort(asc, q, first, last);
}

static void introselect(bool asc, lsc_pair *q, idx first, idx nth, idx last, idx depth_limit) {
    while (last - first > 3) {
        if (depth_limit == 0) {
            heap_select(asc, q, first, nth + 1, last);
            iter_swap(q, first, nth); /* the nth element in its final place */
            return;
        }
        depth_limit--;
        idx cut = unguarded_partition_pivot(asc, q, first, last);
        if (cut <= nth) first = cut;
        else last = cut;
    }
    insertion_sort(asc, q, first, last);
}

void lsc_std_sort_desc(lsc_pair *q, size_t n) { std_sort(false, q, 0, (idx)n); }

void lsc_std_sort_asc(lsc_pair *q, size_t n) { std_sort(true, q, 0, (idx)n); }

/* aten/src/ATen/native/TopKImpl.h, topk_impl_loop, largest and sorted. */
void lsc_torch_topk(lsc_pair *q, size_t n, size_t k) {
    const bool asc = false;
    if (k == 0 || n == 0) return;
    if (k * 64 <= n) {
        partial_sort(asc, q, 0, (idx)k, (idx)n);
    } else {
        idx nth = (idx)k - 1;
        if (nth != (idx)n) introselect(asc, q, 0, nth, (idx)n, lg((idx)n) * 2);
        std_sort(asc, q, 0, (idx)k - 1);
    }
}
