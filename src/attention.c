/* attention.c - the reference causal self-attention (kernels.h): scores in
 * float, softmax with the max subtracted and the sum in double, then the
 * probability-weighted values. Needs no memory: each row's scores are
 * recomputed in each of its three passes (max, sum, weighted values). */
#include "kernels.h"

#include <math.h>

/* Row t of head h: the scaled score of key p. */
static float score(const lsc_attn_args *a, size_t h, size_t t, size_t p) {
    const float *q = a->q + t * a->q_stride + h * a->D;
    const float *k = a->kt + h * a->D * a->kt_stride + p;
    float d = 0.0f;
    for (size_t i = 0; i < a->D; i++) d += q[i] * k[i * a->kt_stride];
    return d * a->scale;
}

void lsc_attention_ref_rows(const lsc_attn_args *a, size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; i++) {
        size_t h = i / a->T, t = i % a->T;
        size_t n = a->n_past + t + 1; /* keys this row sees */
        float m = -INFINITY;
        for (size_t p = 0; p < n; p++) m = fmaxf(m, score(a, h, t, p));
        double sum = 0.0;
        for (size_t p = 0; p < n; p++) sum += expf(score(a, h, t, p) - m);
        float *z = a->z + t * a->z_stride + h * a->D;
        for (size_t d = 0; d < a->D; d++) z[d] = 0.0f;
        for (size_t p = 0; p < n; p++) {
            float w = (float)(expf(score(a, h, t, p) - m) / sum);
            const float *v = a->v + p * a->v_stride + h * a->D;
            for (size_t d = 0; d < a->D; d++) z[d] += w * v[d];
        }
    }
}

void lsc_attention_ref(const lsc_attn_args *a) { lsc_attention_ref_rows(a, 0, a->H * a->T); }
