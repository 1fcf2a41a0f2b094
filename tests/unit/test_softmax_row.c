/* test_softmax_row.c - softmax_row.c's exp against glibc's, and logsumexp,
 * softmax and log-softmax against their plain reference (glibc's exp, one
 * running sum: the code before softmax_row.c) on rows of GPT-2's 50,257
 * values; every build (plain, AVX2, AVX-512, those this CPU has) must give
 * the same bits. Prints the max differences. */
#include "check.h"
#include "kernels.h"
#include "softmax_row.h"
#include "logitscope.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define V 50257

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

/* A deterministic uniform double in [0, 1). */
static double urand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * 0x1p-53;
}

/* A standard normal (Box-Muller). */
static double nrand(void) {
    double u = urand(), v = urand();
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

/* ---- the reference: lsc_logsumexp and lsc_softmax before softmax_row.c ---- */

static double ref_max(const float *x, size_t n) {
    double m = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (x[i] > m) m = x[i];
    return m;
}

static double ref_logsumexp(const float *x, size_t n) {
    double m = ref_max(x, n);
    if (!isfinite(m)) return m;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += exp((double)x[i] - m);
    return m + log(sum);
}

static void ref_softmax(const float *x, size_t n, float *out) {
    double m = ref_max(x, n), sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += exp((double)x[i] - m);
    for (size_t i = 0; i < n; i++) out[i] = (float)(exp((double)x[i] - m) / sum);
}

/* The distance from a to b in units of b's last place. */
static double ulps(double a, double b) {
    return fabs(a - b) / (nextafter(b, INFINITY) - b);
}

/* exp(x) for x in [-708.39, 0] within 2 ulp of glibc's (itself within 1 of
 * the true value); 0 below, where glibc's is under 1.01 * 2^-1022; -inf
 * gives 0, exp(0) and exp(-0) are 1. Points spread uniformly and in log scale, and
 * around each k ln2 / 2, where the range reduction turns over. */
static void test_exp_accuracy(void) {
    double worst = 0, worst_x = 0;
    int n_points = 0;
    for (int i = 0; i < 400000; i++) {
        double x;
        if (i % 4 == 0) x = -708.39 * urand();
        else if (i % 4 == 1) x = -exp(log(708.39) - 60.0 * urand()); /* -1.2e-24 .. -708 */
        else if (i % 4 == 2) x = -2.0 * urand();
        else x = -0.34657359027997264 * (double)(i % 2044) + 1e-9 * (urand() - 0.5);
        if (x < -708.39 || x > 0) continue;
        double u = ulps(lsc_exp_nonpos(x), exp(x));
        n_points++;
        if (u > worst) worst = u, worst_x = x;
    }
    printf("  exp: max %.3f ulp from glibc (at x = %.17g) over %d points in [-708.39, 0]\n",
           worst, worst_x, n_points);
    CHECK(worst <= 2.0);
    CHECK(lsc_exp_nonpos(0.0) == 1.0 && lsc_exp_nonpos(-0.0) == 1.0);
    CHECK(lsc_exp_nonpos(-INFINITY) == 0.0 && !signbit(lsc_exp_nonpos(-INFINITY)));
    CHECK(lsc_exp_nonpos(-1e300) == 0.0 && lsc_exp_nonpos(-745.5) == 0.0);
    double below_worst = 0;
    for (double x = -708.3901; x > -760; x -= 0.0137) {
        CHECK(lsc_exp_nonpos(x) == 0.0);
        if (exp(x) > below_worst) below_worst = exp(x);
    }
    CHECK(below_worst < 1.01 * DBL_MIN);
}

/* The rows of the tests below. */
typedef enum { WIDE, GPT2, NARROW, NEG_INF, EQUAL, HUGE_SPREAD, N_KINDS } row_kind;
static const char *kind_name[N_KINDS] = {"wide (sd 10)", "gpt2-like", "narrow (1e-3)",
                                         "-inf entries", "all equal", "huge spread"};

static void fill_row(float *x, size_t n, row_kind kind) {
    double c = 100.0 * (urand() - 0.5);
    for (size_t i = 0; i < n; i++) {
        switch (kind) {
        case WIDE: x[i] = (float)(c + 10.0 * nrand()); break;
        case GPT2: x[i] = (float)(-100.0 + 3.0 * nrand() + (urand() < 0.001 ? 15 : 0)); break;
        case NARROW: x[i] = (float)(c + 1e-3 * urand()); break;
        case NEG_INF: x[i] = urand() < 0.5 ? -INFINITY : (float)(c + 5.0 * nrand()); break;
        case EQUAL: x[i] = (float)c; break;
        case HUGE_SPREAD: x[i] = (float)(1e4 * nrand()); break; /* most exp underflow */
        default: break;
        }
    }
    if (kind == NEG_INF && n) x[n / 2] = (float)c; /* at least one finite */
}

/* logsumexp, softmax and log-softmax against the reference on rows of V
 * values of each kind (and a single element): lse within 1e-12 absolute
 * (1e-15 relative to its size), probabilities within 1 float ulp (plus
 * 1e-30 where they underflow). Prints the max differences. */
static void test_against_reference(void) {
    float *x = malloc(V * sizeof *x), *p = malloc(V * sizeof *p), *q = malloc(V * sizeof *q);
    float *lp = malloc(V * sizeof *lp);
    for (int kind = 0; kind < N_KINDS; kind++) {
        double lse_diff = 0, p_ulps = 0, lp_diff = 0;
        size_t p_unequal = 0;
        for (int rep = 0; rep < 3; rep++) {
            fill_row(x, V, kind);
            double ours = lsc_logsumexp(x, V), ref = ref_logsumexp(x, V);
            double d = fabs(ours - ref);
            if (d > lse_diff) lse_diff = d;
            CHECK(d <= 1e-12 + 1e-15 * fabs(ref));
            lsc_softmax(x, V, p);
            ref_softmax(x, V, q);
            for (size_t i = 0; i < V; i++) {
                double u = fabs((double)p[i] - q[i]) / (nextafterf(q[i], INFINITY) - q[i]);
                if (p[i] != q[i]) p_unequal++;
                if (u > p_ulps) p_ulps = u;
            }
            lsc_log_softmax(x, V, lp);
            for (size_t i = 0; i < V; i++) {
                float want = (float)((double)x[i] - ref);
                if (isinf(want)) {
                    CHECK(lp[i] == want);
                    continue;
                }
                double e = fabs((double)lp[i] - want) / (nextafterf(fabsf(want), INFINITY) - fabsf(want));
                if (e > lp_diff) lp_diff = e;
            }
        }
        printf("  %-14s lse max |diff| %.3g; softmax max %.2f float ulp (%zu of %d differ); "
               "log_softmax max %.2f float ulp\n",
               kind_name[kind], lse_diff, p_ulps, p_unequal, 3 * V, lp_diff);
        CHECK(p_ulps <= 1.0);
        CHECK(lp_diff <= 1.0);
    }
    /* all equal: every exp is 1 exactly, so lse = c + log(n) to the bit */
    fill_row(x, V, EQUAL);
    CHECK(lsc_logsumexp(x, V) == (double)x[0] + log((double)V));
    /* a single element: exp(0) = 1, lse = the element */
    float one = -3.25f;
    CHECK(lsc_logsumexp(&one, 1) == -3.25);
    lsc_softmax(&one, 1, &one);
    CHECK(one == 1.0f);
    /* beside the max only terms under 2^-1022 (0 here, subnormal in glibc):
     * the sum is 1 either way */
    float far[3] = {0.0f, -720.0f, -730.0f};
    CHECK(lsc_logsumexp(far, 3) == 0.0 && ref_logsumexp(far, 3) == 0.0);
    free(x);
    free(p);
    free(q);
    free(lp);
}

/* Every build this CPU has gives the plain build's bits: lsc_row_max,
 * lsc_row_exp_sum and lsc_row_exp_div on every length 0..70 (the tails of
 * blocks of up to 32), at 4 misalignments, and on whole rows of each kind;
 * and lsc_softmax in place equals it out of place. */
static void test_levels_identical(void) {
    lsc_simd best = lsc_simd_best();
    lsc_simd levels[2];
    int n_levels = 0;
    if (best == LSC_SIMD_AVX2 || best == LSC_SIMD_AVX512) levels[n_levels++] = LSC_SIMD_AVX2;
    if (best == LSC_SIMD_AVX512) levels[n_levels++] = LSC_SIMD_AVX512;
    if (!n_levels)
        printf("SKIP avx2, avx512 builds: the CPU lacks AVX2, only the plain build runs here\n");
    else if (n_levels == 1)
        printf("SKIP avx512 build: the CPU lacks AVX-512, softmax_row.c's is not tested here\n");
    float *buf = malloc((V + 4) * sizeof *buf), *a = malloc(V * sizeof *a),
          *b = malloc(V * sizeof *b);
    for (int li = 0; li < n_levels; li++) {
        size_t compared = 0, differ = 0;
        for (int kind = 0; kind < N_KINDS; kind++) {
            for (size_t off = 0; off < 4; off++) {
                float *x = buf + off;
                for (size_t n = 0; n <= 71; n++) {
                    size_t len = n == 71 ? V : n;
                    fill_row(x, len, kind);
                    double m = lsc_row_max(x, len, LSC_SIMD_REF);
                    double m1 = lsc_row_max(x, len, levels[li]);
                    compared++;
                    if (m != ref_max(x, len) || memcmp(&m, &m1, sizeof m)) differ++;
                    if (!isfinite(m)) continue;
                    double s0 = lsc_row_exp_sum(x, len, m, LSC_SIMD_REF);
                    double s1 = lsc_row_exp_sum(x, len, m, levels[li]);
                    lsc_row_exp_div(x, len, m, s0, a, LSC_SIMD_REF);
                    lsc_row_exp_div(x, len, m, s0, b, levels[li]);
                    if (memcmp(&s0, &s1, sizeof s0) || memcmp(a, b, len * sizeof *a)) differ++;
                }
            }
        }
        printf("  %s: %zu rows, %zu differ from the plain build in any bit\n",
               lsc_simd_name(levels[li]), compared, differ);
        CHECK(differ == 0);
    }
    /* in place */
    fill_row(buf, V, GPT2);
    lsc_softmax(buf, V, a);
    lsc_softmax(buf, V, buf);
    CHECK(memcmp(a, buf, V * sizeof *a) == 0);
    free(buf);
    free(a);
    free(b);
}

/* lsc_row_max at every level: a NaN at any place of rows of every length up
 * to 70 gives NaN; +inf gives +inf; nothing, or only -inf, gives -inf; -0
 * and 0 give +0. */
static void test_row_max_special(void) {
    lsc_simd levels[3] = {LSC_SIMD_REF, LSC_SIMD_AVX2, LSC_SIMD_AVX512};
    lsc_simd best = lsc_simd_best();
    int n_levels = best == LSC_SIMD_AVX512 ? 3 : best == LSC_SIMD_AVX2 ? 2 : 1;
    float x[70];
    size_t bad = 0;
    for (int li = 0; li < n_levels; li++) {
        for (size_t n = 1; n <= 70; n++)
            for (size_t at = 0; at < n; at++) {
                for (size_t i = 0; i < n; i++) x[i] = (float)i;
                x[at] = NAN;
                bad += !isnan(lsc_row_max(x, n, levels[li]));
                x[at] = INFINITY;
                bad += lsc_row_max(x, n, levels[li]) != INFINITY;
                for (size_t i = 0; i < n; i++) x[i] = -INFINITY;
                bad += lsc_row_max(x, n, levels[li]) != -INFINITY;
            }
        bad += lsc_row_max(x, 0, levels[li]) != -INFINITY;
        /* a zero max is +0 whichever zero comes first in whichever lane */
        for (size_t n = 1; n <= 70; n++)
            for (size_t at = 0; at < n; at++) {
                for (size_t i = 0; i < n; i++) x[i] = i % 2 ? -1.0f : -0.0f;
                x[at] = 0.0f;
                double m = lsc_row_max(x, n, levels[li]);
                bad += m != 0.0 || signbit(m);
            }
    }
    CHECK(bad == 0);
}

/* LSC_SIMD=ref (the plain build) and the default give the same bits through
 * the public functions. */
static void test_env_level(void) {
    float *x = malloc(V * sizeof *x), *p = malloc(V * sizeof *p), *q = malloc(V * sizeof *q);
    fill_row(x, V, GPT2);
    double l0 = lsc_logsumexp(x, V);
    lsc_softmax(x, V, p);
    setenv("LSC_SIMD", "ref", 1);
    double l1 = lsc_logsumexp(x, V);
    lsc_softmax(x, V, q);
    unsetenv("LSC_SIMD");
    CHECK(memcmp(&l0, &l1, sizeof l0) == 0);
    CHECK(memcmp(p, q, V * sizeof *p) == 0);
    free(x);
    free(p);
    free(q);
}

int main(void) {
    RUN(test_exp_accuracy);
    RUN(test_against_reference);
    RUN(test_levels_identical);
    RUN(test_row_max_special);
    RUN(test_env_level);
    return CHECK_DONE();
}
