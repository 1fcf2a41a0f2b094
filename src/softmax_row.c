/* softmax_row.c - a row's max, sum of exp(x - max) and softmax
 * (softmax_row.h).
 *
 * One body (softmax_row_lanes.h) in GCC's vector extension (which clang
 * shares), built three times: plain, AVX2 and AVX-512. It uses only +, -, *,
 * comparisons and bit operations in an order written out in full (the
 * Makefile builds this file with -ffp-contract=off, so no fma either), each
 * exactly rounded by IEEE-754 or exact, so the builds, and any other CPU,
 * give the same bits. */
#include "softmax_row.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define LSC_ROW_X86 1
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* exp(x) for x <= 0. With n = round(x / ln 2) and r = x - n ln 2 (|r| <=
 * ln2 / 2; ln 2 in two parts, n * LN2_HI exact), exp(x) = 2^n exp(r). n is
 * rounded by adding 1.5 * 2^52, which leaves n in the low bits of t, from
 * where it moves into the exponent field of 2^n. exp(r) is the polynomial
 * through exp at the 12 Chebyshev nodes of [-ln2/2, ln2/2] (fitted in
 * 60-digit arithmetic, then rounded; c0 and c1 round to 1, and are 1 below):
 * 1.6e-17 relative before rounding; evaluated, 1 ulp from glibc's exp at
 * most (test_softmax_row.c). Below EXP_MIN_ARG the result is 0
 * (softmax_row.h); above it n >= -1022, a normal 2^n. */
#define LOG2E 0x1.71547652b82fep+0
#define SHIFTER 0x1.8p+52
#define LN2_HI 0x1.62e42fee00000p-1
#define LN2_LO 0x1.a39ef35793c76p-33
#define EXP_C2 0x1.0000000000011p-1
#define EXP_C3 0x1.555555555555ap-3
#define EXP_C4 0x1.555555554f0bap-5
#define EXP_C5 0x1.111111110f21ep-7
#define EXP_C6 0x1.6c16c1880029fp-10
#define EXP_C7 0x1.a01a01b1461c5p-13
#define EXP_C8 0x1.a01991a10d9aep-16
#define EXP_C9 0x1.71ddf56d8deb5p-19
#define EXP_C10 0x1.28b4101c77212p-22
#define EXP_C11 0x1.af632a0f7e2cep-26
#define EXP_MIN_ARG (-708.39)

/* The builds: LANES doubles per vector (2: SSE2, NEON, elsewhere split
 * into scalars by gcc; 4: AVX2; 8: AVX-512), GROUP vectors side by side
 * (measured on Zen 3: AVX2 at 2, 4, 6, 8, 16 vectors took 79, 72, 69, 64,
 * 68 us a row). */
#define LANES 2
#define GROUP 4
#define SUFFIX plain
#define TARGET
#include "softmax_row_lanes.h"
#undef LANES
#undef GROUP
#undef SUFFIX
#undef TARGET
#if LSC_ROW_X86
#define LANES 4
#define GROUP 8
#define SUFFIX avx2
#define TARGET __attribute__((target("avx2")))
#include "softmax_row_lanes.h"
#undef LANES
#undef GROUP
#undef SUFFIX
#undef TARGET
#define LANES 8
#define GROUP 4
#define SUFFIX avx512
#define TARGET __attribute__((target("avx512f")))
#include "softmax_row_lanes.h"
#undef LANES
#undef GROUP
#undef SUFFIX
#undef TARGET
#endif

/* One build's kernels. */
typedef struct row_kernels {
    double (*max)(const float *x, size_t n);
    double (*sum)(const float *x, size_t n, double m);
    void (*div)(const float *x, size_t n, double m, double sum, float *out);
} row_kernels;

static const row_kernels *build_for(lsc_simd level) {
    static const row_kernels plain = {max_plain, sum_plain, div_plain};
#if LSC_ROW_X86
    static const row_kernels avx2 = {max_avx2, sum_avx2, div_avx2};
    static const row_kernels avx512 = {max_avx512, sum_avx512, div_avx512};
    if (level == LSC_SIMD_AVX512) return &avx512;
    if (level == LSC_SIMD_AVX2) return &avx2;
#endif
    (void)level;
    return &plain;
}

double lsc_row_max(const float *x, size_t n, lsc_simd level) {
    return build_for(level)->max(x, n);
}

double lsc_row_exp_sum(const float *x, size_t n, double m, lsc_simd level) {
    return build_for(level)->sum(x, n, m);
}

void lsc_row_exp_div(const float *x, size_t n, double m, double sum, float *out,
                     lsc_simd level) {
    build_for(level)->div(x, n, m, sum, out);
}

double lsc_exp_nonpos(double x) {
    float zero[2 * 4] = {0}; /* one group of the plain build */
    vd_plain e[4];
    exp_group_plain(zero, -x, e); /* 0 - (-x) = x exactly */
    return e[0][0];
}
