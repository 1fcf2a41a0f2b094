/* softmax_row_lanes.h - the body of softmax_row.c, included once per build
 * with LANES (doubles per vector: 2, 4 or 8), GROUP (vectors worked on side
 * by side), SUFFIX (names this build's functions) and TARGET (its function
 * attribute) defined; see softmax_row.c. */

#define LSC_CAT_(a, b) a##_##b
#define LSC_CAT(a, b) LSC_CAT_(a, b)
#define FN(name) LSC_CAT(name, SUFFIX)
#define VD FN(vd)
#define VU FN(vu)
#define VF FN(vf)
#define NV (8 / LANES)          /* vectors that hold the 8 partial sums */
#define BLOCK (GROUP * LANES)   /* elements per step, a multiple of 8 */
#define EACH for (size_t j = 0; j < GROUP; j++)

typedef double VD __attribute__((vector_size(8 * LANES)));
typedef uint64_t VU __attribute__((vector_size(8 * LANES)));
typedef float VF __attribute__((vector_size(4 * LANES)));

/* x[0:LANES) - m, in double */
#if LANES == 2
#define LOAD_SUB(x, m) ((VD){(x)[0], (x)[1]} - (m))
#elif LANES == 4
#define LOAD_SUB(x, m) ((VD){(x)[0], (x)[1], (x)[2], (x)[3]} - (m))
#else
#define LOAD_SUB(x, m) ((VD){(x)[0], (x)[1], (x)[2], (x)[3], (x)[4], (x)[5], (x)[6], (x)[7]} - (m))
#endif

/* e[j] = exp(x[j] - m) for the GROUP vectors at x (x <= m). Every step is
 * done on all GROUP vectors before the next, so the out-of-order core always
 * has independent work in its window. A comparison gives all-ones lanes
 * where it holds, so & and | select. */
TARGET ALWAYS_INLINE void FN(exp_group)(const float *x, double m, VD *e) {
    VD d[GROUP], t[GROUP], r[GROUP], p[GROUP];
    VU below[GROUP];
    EACH d[j] = LOAD_SUB(x + j * LANES, m);
    /* below EXP_MIN_ARG (-inf too) the result is 0; x is moved up to it so
     * that everything on the way stays finite */
    EACH below[j] = (VU)(d[j] < EXP_MIN_ARG);
    EACH d[j] = (VD)((below[j] & (VU)((VD){0} + EXP_MIN_ARG)) | (~below[j] & (VU)d[j]));
    EACH t[j] = d[j] * LOG2E + SHIFTER;
    EACH r[j] = t[j] - SHIFTER; /* n */
    EACH r[j] = (d[j] - r[j] * LN2_HI) - r[j] * LN2_LO;
    /* p = 1 + r + r^2 P(r), P of degree 9 by Estrin's scheme: chains of 5
     * steps instead of Horner's 11 */
    VD r2[GROUP], r4[GROUP], a[GROUP], b[GROUP], c[GROUP];
    EACH r2[j] = r[j] * r[j];
    EACH r4[j] = r2[j] * r2[j];
    EACH a[j] = (EXP_C2 + EXP_C3 * r[j]) + (EXP_C4 + EXP_C5 * r[j]) * r2[j];
    EACH b[j] = (EXP_C6 + EXP_C7 * r[j]) + (EXP_C8 + EXP_C9 * r[j]) * r2[j];
    EACH c[j] = EXP_C10 + EXP_C11 * r[j];
    EACH p[j] = (a[j] + b[j] * r4[j]) + c[j] * (r4[j] * r4[j]);
    EACH p[j] = 1.0 + (r[j] + r2[j] * p[j]);
    /* times 2^n: n added to p's exponent field (n sits in t's low bits;
     * p >= 1 where n = -1022, so the result stays normal) */
    EACH e[j] = (VD)(((VU)p[j] + ((VU)t[j] << 52)) & ~below[j]);
}

/* The max of BLOCK lanes (element i in lane i % BLOCK, the tail padded
 * with -inf) and NaN flags; then the lanes' max. x > m: a NaN never
 * replaces m, and of -0 and 0 the first met stays, which depends on BLOCK:
 * a zero max comes out as +0. */
TARGET static double FN(max)(const float *x, size_t n) {
    VD mx[GROUP];
    VU nan[GROUP];
    EACH mx[j] = (VD){0} - INFINITY, nan[j] = (VU){0};
    for (size_t i = 0; i < n; i += BLOCK) {
        float f[BLOCK];
        const float *src = x + i;
        if (n - i < BLOCK) {
            for (size_t k = 0; k < BLOCK; k++) f[k] = i + k < n ? x[i + k] : -INFINITY;
            src = f;
        }
        EACH {
            VD d = LOAD_SUB(src + j * LANES, 0.0);
            VU gt = (VU)(d > mx[j]);
            mx[j] = (VD)((gt & (VU)d) | (~gt & (VU)mx[j]));
            nan[j] |= (VU)(d != d);
        }
    }
    double l[BLOCK];
    uint64_t any_nan[BLOCK];
    memcpy(l, mx, sizeof l);
    memcpy(any_nan, nan, sizeof any_nan);
    double m = -INFINITY;
    for (size_t k = 0; k < BLOCK; k++) {
        if (any_nan[k]) return NAN;
        if (l[k] > m) m = l[k];
    }
    return m + 0.0; /* -0 + 0 = +0 */
}

/* Element i goes into partial sum i % 8; the tail is padded with -inf,
 * whose exp, +0, leaves a sum's bits alone. The 8 are added pairwise. */
TARGET static double FN(sum)(const float *x, size_t n, double m) {
    VD s[NV], e[GROUP];
    for (size_t j = 0; j < NV; j++) s[j] = (VD){0};
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        FN(exp_group)(x + i, m, e);
        EACH s[j % NV] += e[j];
    }
    if (i < n) {
        float f[BLOCK];
        for (size_t k = 0; k < BLOCK; k++) f[k] = i + k < n ? x[i + k] : -INFINITY;
        FN(exp_group)(f, m, e);
        EACH s[j % NV] += e[j];
    }
    double l[8];
    memcpy(l, s, sizeof l);
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/* A block at a time, read before it is written, so out may equal x. */
TARGET static void FN(div)(const float *x, size_t n, double m, double sum, float *out) {
    VD e[GROUP];
    for (size_t i = 0; i < n; i += BLOCK) {
        float f[BLOCK];
        const float *src = x + i;
        size_t k = n - i < BLOCK ? n - i : BLOCK;
        if (k < BLOCK) {
            for (size_t q = 0; q < BLOCK; q++) f[q] = q < k ? x[i + q] : -INFINITY;
            src = f;
        }
        FN(exp_group)(src, m, e);
        EACH {
            VF y = __builtin_convertvector(e[j] / sum, VF);
            memcpy(f + j * LANES, &y, sizeof y);
        }
        memcpy(out + i, f, k * sizeof(float));
    }
}

#undef LOAD_SUB
#undef EACH
#undef BLOCK
#undef NV
#undef VF
#undef VU
#undef VD
#undef FN
#undef LSC_CAT
#undef LSC_CAT_
