/* sampling.c - choosing a token from a row of logits: a seeded rng,
 * multinomial draws (torch.multinomial), and the sampler, which applies
 * transformers' logits processors and warpers in their order (repetition
 * penalty, temperature, top-k, top-p, min-p) and picks a token. Reading a row
 * (softmax, top-k, rank) is inspect.c. */
#include "internal.h"
#include "order.h"
#include "torchsort.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Values to select from: a float row or a double row (one is NULL). */
typedef struct keys {
    const float *f;
    const double *d;
} keys;

static inline double key_at(keys k, size_t i) { return k.f ? (double)k.f[i] : k.d[i]; }

/* Restores the heap property below position `i` of heap[0..len), a heap whose
 * root is the element that sorts last (the worst kept so far). */
static void heap_sift_down(keys k, int32_t *heap, size_t len, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, worst = i;
        if (l < len && lsc_before(key_at(k, (size_t)heap[worst]), (size_t)heap[worst],
                                  key_at(k, (size_t)heap[l]), (size_t)heap[l]))
            worst = l;
        if (r < len && lsc_before(key_at(k, (size_t)heap[worst]), (size_t)heap[worst],
                                  key_at(k, (size_t)heap[r]), (size_t)heap[r]))
            worst = r;
        if (worst == i) return;
        int32_t t = heap[i];
        heap[i] = heap[worst];
        heap[worst] = t;
        i = worst;
    }
}

/* Moves heap[i] up towards the root while it sorts after its parent. */
static void heap_sift_up(keys k, int32_t *heap, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!lsc_before(key_at(k, (size_t)heap[p]), (size_t)heap[p], key_at(k, (size_t)heap[i]),
                        (size_t)heap[i]))
            return;
        int32_t t = heap[i];
        heap[i] = heap[p];
        heap[p] = t;
        i = p;
    }
}

/* Writes the indices of the min(want, n) first values of `k` in sorted order
 * (lsc_before, order.h) into out, using out itself as a bounded heap:
 * O(n log want), no allocation. Returns the count written. */
static size_t select_first(keys k, size_t n, size_t want, int32_t *out) {
    if (want > n) want = n;
    if (want == 0) return 0;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (len < want) {
            out[len] = (int32_t)i;
            heap_sift_up(k, out, len++);
        } else if (lsc_before(key_at(k, i), i, key_at(k, (size_t)out[0]), (size_t)out[0])) {
            out[0] = (int32_t)i;
            heap_sift_down(k, out, len, 0);
        }
    }
    /* heap sort: repeatedly move the worst kept to the end */
    for (size_t end = len; end > 1; end--) {
        int32_t t = out[0];
        out[0] = out[end - 1];
        out[end - 1] = t;
        heap_sift_down(k, out, end - 1, 0);
    }
    return len;
}

/* ------------------------------------------------------------------------ */
/* Random numbers                                                            */
/* ------------------------------------------------------------------------ */

/* splitmix64: spreads a seed over the xoshiro state. */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void lsc_rng_seed(lsc_rng *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) rng->state[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman and Vigna). */
uint64_t lsc_rng_next(lsc_rng *rng) {
    uint64_t *s = rng->state;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double lsc_rng_uniform(lsc_rng *rng) { return (double)(lsc_rng_next(rng) >> 11) * 0x1.0p-53; }

/* ------------------------------------------------------------------------ */
/* Multinomial draws                                                         */
/* ------------------------------------------------------------------------ */

lsc_status lsc_multinomial(const float *probs, size_t n, size_t n_draws, int replacement,
                           lsc_rng *rng, int32_t *out, lsc_error *err) {
    if (n == 0) return lsc_fail(err, LSC_ERR_INVALID_ARG, "multinomial: no categories");
    if (n > INT32_MAX)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "multinomial: %zu categories is too many", n);
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(probs[i] >= 0.0f) || isinf(probs[i]))
            return lsc_fail(err, LSC_ERR_INVALID_ARG,
                            "multinomial: weight %zu is %g (weights must be finite and >= 0)", i,
                            (double)probs[i]);
        nonzero += probs[i] > 0.0f;
    }
    if (nonzero == 0)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "multinomial: every weight is zero");
    if (!replacement && n_draws > nonzero)
        return lsc_fail(err, LSC_ERR_INVALID_ARG,
                        "multinomial: cannot draw %zu without replacement from %zu non-zero weights",
                        n_draws, nonzero);
    if (n_draws == 0) return LSC_OK;

    if (replacement) {
        /* inverse CDF: the first index whose running sum exceeds u * total */
        double *cdf = malloc(n * sizeof *cdf);
        if (!cdf) return lsc_fail(err, LSC_ERR_NOMEM, "multinomial: out of memory");
        double run = 0.0;
        size_t last = 0;
        for (size_t i = 0; i < n; i++) {
            run += probs[i];
            cdf[i] = run;
            if (probs[i] > 0.0f) last = i;
        }
        for (size_t d = 0; d < n_draws; d++) {
            double u = lsc_rng_uniform(rng) * run;
            size_t lo = 0, hi = last; /* answer in [lo, hi]; cdf[last] == run > u */
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (cdf[mid] > u) hi = mid;
                else lo = mid + 1;
            }
            out[d] = (int32_t)lo;
        }
        free(cdf);
        return LSC_OK;
    }

    /* Without replacement, as torch: key_i = w_i / E_i with E_i ~ Exp(1), and
     * the draws are the indices of the n_draws largest keys, largest first.
     * The largest key is index i with probability w_i / total, and the rest
     * follow as sequential draws from what is left (Efraimidis-Spirakis). Kept
     * in logs: log w_i - log E_i, over the non-zero weights only (in index
     * order, so ties still go to the lower index). */
    double *key = malloc(nonzero * sizeof *key);
    int32_t *where = malloc(nonzero * sizeof *where);
    if (!key || !where) {
        free(key);
        free(where);
        return lsc_fail(err, LSC_ERR_NOMEM, "multinomial: out of memory");
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(probs[i] > 0.0f)) continue;
        double e = -log1p(-lsc_rng_uniform(rng)); /* Exp(1), in [0, 37] */
        key[m] = log((double)probs[i]) - log(e);
        where[m++] = (int32_t)i;
    }
    keys ks = {NULL, key};
    select_first(ks, m, n_draws, out);
    for (size_t d = 0; d < n_draws; d++) out[d] = where[out[d]];
    free(key);
    free(where);
    return LSC_OK;
}

/* ------------------------------------------------------------------------ */
/* The sampler: a fixed chain of stages in transformers' order               */
/* ------------------------------------------------------------------------ */

struct lsc_sampler {
    lsc_sampler_params p;
    lsc_rng rng;
    size_t cap;     /* entries the scratch buffers hold */
    float *probs;    /* [cap] */
    int32_t *order;  /* [cap] */
    lsc_pair *pairs; /* [cap] */
};

lsc_sampler_params lsc_sampler_default_params(void) {
    lsc_sampler_params p = {0};
    p.do_sample = 0;
    p.temperature = 1.0f;
    p.top_k = 50;
    p.top_p = 1.0;
    p.min_p = 0.0f;
    p.repetition_penalty = 1.0f;
    p.seed = 0;
    return p;
}

/* Makes sure the scratch buffers hold n entries. */
static lsc_status sampler_reserve(lsc_sampler *s, size_t n, lsc_error *err) {
    if (n <= s->cap) return LSC_OK;
    float *p = malloc(n * sizeof *p);
    int32_t *o = malloc(n * sizeof *o);
    lsc_pair *q = malloc(n * sizeof *q);
    if (!p || !o || !q) {
        free(p);
        free(o);
        free(q);
        return lsc_fail(err, LSC_ERR_NOMEM, "sampler: cannot allocate scratch for %zu tokens", n);
    }
    free(s->probs);
    free(s->order);
    free(s->pairs);
    s->probs = p;
    s->order = o;
    s->pairs = q;
    s->cap = n;
    return LSC_OK;
}

/* RepetitionPenaltyLogitsProcessor: each distinct seen token's logit is
 * divided by the penalty when positive, multiplied when negative. A token
 * seen twice is penalised once: its original value is read through `x`, which
 * is still unchanged for it because the marks in `done` skip repeats. */
static lsc_status stage_repetition(lsc_sampler *s, float *x, size_t n, const int32_t *prev,
                                   size_t n_prev, lsc_error *err) {
    float pen = s->p.repetition_penalty;
    if (pen == 1.0f || n_prev == 0) return LSC_OK;
    unsigned char *done = calloc(n, 1);
    if (!done) return lsc_fail(err, LSC_ERR_NOMEM, "sampler: out of memory");
    for (size_t i = 0; i < n_prev; i++) {
        size_t id = (size_t)prev[i];
        if (done[id]) continue;
        done[id] = 1;
        x[id] = x[id] < 0.0f ? x[id] * pen : x[id] / pen;
    }
    free(done);
    return LSC_OK;
}

/* TemperatureLogitsWarper: logits / t (t == 0 is handled as greedy). */
static lsc_status stage_temperature(lsc_sampler *s, float *x, size_t n, const int32_t *prev,
                                    size_t n_prev, lsc_error *err) {
    float t = s->p.temperature;
    if (t == 1.0f || t == 0.0f) return LSC_OK;
    for (size_t i = 0; i < n; i++) x[i] = x[i] / t;
    return LSC_OK;
}

/* TopKLogitsWarper: removes every logit below the k-th largest (ties with the
 * k-th stay). */
static lsc_status stage_top_k(lsc_sampler *s, float *x, size_t n, const int32_t *prev,
                              size_t n_prev, lsc_error *err) {
    size_t k = (size_t)s->p.top_k;
    if (k == 0 || k >= n) return LSC_OK;
    keys ks = {x, NULL};
    size_t got = select_first(ks, n, k, s->order); /* only the k-th value matters */
    float kth = x[s->order[got - 1]];
    for (size_t i = 0; i < n; i++)
        if (x[i] < kth) x[i] = -INFINITY;
    return LSC_OK;
}

/* TopPLogitsWarper: sorts the row ascending (torch.sort's order, ties
 * included), and removes the tokens whose cumulative probability from the
 * lowest up is <= 1 - top_p, always keeping the highest. That keeps the
 * smallest set of top tokens whose probabilities sum to >= top_p. As torch,
 * each probability is a float and the running sum a double.
 *
 * The -inf entries (after top-k, all but 50) sort first and add 0, so when
 * the finite values are all distinct their order alone decides: only those
 * are sorted. When some tie, where the ties land depends on the whole row in
 * torch's sort, so the whole row is sorted as torch does. */
static lsc_status stage_top_p(lsc_sampler *s, float *x, size_t n, const int32_t *prev,
                              size_t n_prev, lsc_error *err) {
    if (s->p.top_p >= 1.0) return LSC_OK;
    double lse = lsc_logsumexp(x, n);
    if (!isfinite(lse)) return LSC_OK;
    lsc_pair *q = s->pairs;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (x[i] > -INFINITY) {
            q[m].v = x[i];
            q[m++].i = (int32_t)i;
        }
    lsc_std_sort_asc(q, m);
    bool ties = false;
    for (size_t r = 1; r < m && !ties; r++) ties = q[r].v == q[r - 1].v;
    if (ties) {
        for (size_t i = 0; i < n; i++) {
            q[i].v = x[i];
            q[i].i = (int32_t)i;
        }
        lsc_std_sort_asc(q, n);
        m = n;
    }
    float threshold = (float)(1.0 - s->p.top_p);
    double cum = 0.0;
    for (size_t r = 0; r + 1 < m; r++) { /* the last (highest) always stays */
        cum += (float)exp((double)q[r].v - lse);
        if (!((float)cum <= threshold)) break; /* the sum only grows */
        x[q[r].i] = -INFINITY;
    }
    return LSC_OK;
}

/* MinPLogitsWarper: removes tokens whose probability is below min_p times the
 * highest probability (p_i / p_max = exp(x_i - max)); the highest stays. */
static lsc_status stage_min_p(lsc_sampler *s, float *x, size_t n, const int32_t *prev,
                              size_t n_prev, lsc_error *err) {
    double mp = s->p.min_p;
    if (mp <= 0.0) return LSC_OK;
    size_t best = lsc_argmax(x, n);
    double m = x[best];
    if (!isfinite(m)) return LSC_OK;
    for (size_t i = 0; i < n; i++)
        if (i != best && exp((double)x[i] - m) < mp) x[i] = -INFINITY;
    return LSC_OK;
}

typedef lsc_status (*stage_fn)(lsc_sampler *s, float *x, size_t n, const int32_t *prev,
                               size_t n_prev, lsc_error *err);

/* The chain, in transformers' order: processors (always), then warpers (only
 * when sampling), as GenerationMixin._get_logits_processor builds it. */
static const struct {
    stage_fn fn;
    bool warper;
} chain[] = {
    {stage_repetition, false},
    {stage_temperature, true},
    {stage_top_k, true},
    {stage_top_p, true},
    {stage_min_p, true},
};

/* Checks one parameter set; fills err naming the first bad value. */
static lsc_status check_params(lsc_sampler_params p, lsc_error *err) {
    if (!(p.temperature >= 0.0f) || isinf(p.temperature))
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "temperature must be >= 0, got %g",
                        (double)p.temperature);
    if (p.top_k < 0)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "top_k must be >= 0 (0 = off), got %d", p.top_k);
    if (!(p.top_p > 0.0 && p.top_p <= 1.0))
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "top_p must be in (0, 1], got %g", p.top_p);
    if (!(p.min_p >= 0.0f && p.min_p <= 1.0f))
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "min_p must be in [0, 1], got %g",
                        (double)p.min_p);
    if (!(p.repetition_penalty > 0.0f) || isinf(p.repetition_penalty))
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "repetition_penalty must be > 0, got %g",
                        (double)p.repetition_penalty);
    return LSC_OK;
}

lsc_status lsc_sampler_new(lsc_sampler_params params, lsc_sampler **out, lsc_error *err) {
    *out = NULL;
    lsc_status st = check_params(params, err);
    if (st) return st;
    lsc_sampler *s = calloc(1, sizeof *s);
    if (!s) return lsc_fail(err, LSC_ERR_NOMEM, "sampler: out of memory");
    s->p = params;
    lsc_rng_seed(&s->rng, params.seed);
    *out = s;
    return LSC_OK;
}

void lsc_sampler_free(lsc_sampler *s) {
    if (!s) return;
    free(s->probs);
    free(s->order);
    free(s->pairs);
    free(s);
}

lsc_sampler_params lsc_sampler_get_params(const lsc_sampler *s) { return s->p; }

lsc_status lsc_sampler_apply(lsc_sampler *s, const float *logits, size_t n_vocab,
                             const int32_t *prev, size_t n_prev, float *out, lsc_error *err) {
    if (n_vocab == 0 || n_vocab > INT32_MAX)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "sampler: %zu logits per row", n_vocab);
    for (size_t i = 0; i < n_prev; i++)
        if (prev[i] < 0 || (size_t)prev[i] >= n_vocab)
            return lsc_fail(err, LSC_ERR_INVALID_ARG,
                            "sampler: token id %d at %zu is outside the vocabulary of %zu",
                            (int)prev[i], i, n_vocab);
    lsc_status st = sampler_reserve(s, n_vocab, err);
    if (st) return st;
    if (out != logits) memcpy(out, logits, n_vocab * sizeof *out);
    bool sampling = s->p.do_sample && s->p.temperature != 0.0f;
    for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) {
        if (chain[i].warper && !sampling) continue;
        st = chain[i].fn(s, out, n_vocab, prev, n_prev, err);
        if (st) return st;
    }
    return LSC_OK;
}

lsc_status lsc_sampler_sample(lsc_sampler *s, const float *logits, size_t n_vocab,
                              const int32_t *prev, size_t n_prev, int32_t *out,
                              lsc_error *err) {
    lsc_status st = sampler_reserve(s, n_vocab, err);
    if (st) return st;
    float *x = s->probs;
    st = lsc_sampler_apply(s, logits, n_vocab, prev, n_prev, x, err);
    if (st) return st;
    size_t best = lsc_argmax(x, n_vocab);
    if (isnan(x[best]))
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "sampler: the logits contain NaN");
    if (x[best] == -INFINITY)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "sampler: every logit is -inf");
    /* greedy; also when a tiny temperature pushed the top logit to +inf,
     * where the distribution is all on it */
    if (!s->p.do_sample || s->p.temperature == 0.0f || x[best] == INFINITY) {
        *out = (int32_t)best;
        return LSC_OK;
    }
    lsc_softmax(x, n_vocab, x);
    return lsc_multinomial(x, n_vocab, 1, 1, &s->rng, out, err);
}
