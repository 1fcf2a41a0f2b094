/* softmax_row.h - the kernels under softmax, log-softmax and logsumexp
 * (inspect.c) over a row of logits: its max, the sum of exp(x[i] - max),
 * and exp(x[i] - max) / sum (softmax_row.c; private).
 *
 * The arithmetic is IEEE-754 +, -, * in an order written out in full, with
 * no fma and no library exp, so every level gives the same bits on every
 * CPU; a level is only a choice of speed. `level` is one this CPU runs
 * (lsc_simd_default()): LSC_SIMD_AVX2 and LSC_SIMD_AVX512 pick those builds
 * of the same code, any other the plain build. */
#ifndef LSC_SOFTMAX_ROW_H
#define LSC_SOFTMAX_ROW_H

#include "logitscope.h"

#include <stddef.h>

/* The largest of x[0:n) (-inf for n == 0, +0 for -0); NaN when any value
 * is NaN. */
double lsc_row_max(const float *x, size_t n, lsc_simd level);

/* sum_i exp(x[i] - m) over i < n, for a finite m >= every x[i] (no NaN in
 * x): 8 partial sums, element i into sum i % 8, added pairwise at the end.
 * Within 1e-15 relative of the sum of glibc's exp (test_softmax_row.c). */
double lsc_row_exp_sum(const float *x, size_t n, double m, lsc_simd level);

/* out[i] = (float)(exp(x[i] - m) / sum) for i < n, m as above; `out` may
 * equal `x`. */
void lsc_row_exp_div(const float *x, size_t n, double m, double sum, float *out,
                     lsc_simd level);

/* The exp of the two above, for one x <= 0 (-inf gives 0): within 2 ulp of
 * the true value, except that x < -708.39 gives 0 (exp(-708.39) = 1.006 *
 * 2^-1022): every sum here holds exp(0) = 1, which such a term cannot move.
 * For the accuracy test. */
double lsc_exp_nonpos(double x);

#endif
