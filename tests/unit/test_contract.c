/* test_contract.c - the library's contract (issue 8, item 5) on the `tiny`
 * fixture and the real GPT-2 tokenizer files:
 *  - every failing call returns a status and fills lsc_error with the same
 *    status and a non-empty one-line message, and leaves its out-pointers NULL;
 *  - every object can be freed after any failure, including an allocation that
 *    fails at any point: this file replaces malloc/calloc/realloc/free (glibc
 *    allows it) to make the k-th allocation fail, for k = 1, 2, ... until the
 *    call succeeds, and counts live blocks to show nothing leaks on the way
 *    (skipped under AddressSanitizer, which owns malloc; LeakSanitizer covers
 *    leaks there);
 *  - hooks are removed after a run that failed halfway, and the context then
 *    gives the same logits as a fresh one.
 * That no library object calls printf/exit/abort or touches stdout/stderr is
 * checked on the archive's symbols by tests/test_bad_inputs.py. */
#include "check.h"
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char dir[512];

/* ------------------------------------------------------------------------ */
/* Allocation failure injection                                              */
/* ------------------------------------------------------------------------ */

static long n_allocs;    /* allocation calls since arm() */
static long fail_at = 0; /* the allocation call that fails (1-based); 0 = none */
static long live;        /* blocks allocated and not yet freed */

#if defined(__SANITIZE_ADDRESS__)
#define INJECT 0
#else
#define INJECT 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

/* True when this allocation call is the one chosen to fail. */
static int should_fail(void) {
    return fail_at && __atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED) == fail_at;
}

void *malloc(size_t n) {
    if (should_fail()) return NULL;
    void *p = __libc_malloc(n);
    if (p) __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
    return p;
}

void *calloc(size_t a, size_t b) {
    if (should_fail()) return NULL;
    void *p = __libc_calloc(a, b);
    if (p) __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
    return p;
}

void *realloc(void *old, size_t n) {
    if (!old) return malloc(n);
    if (n == 0) {
        free(old);
        return NULL;
    }
    if (should_fail()) return NULL;
    return __libc_realloc(old, n);
}

void free(void *p) {
    if (p) __atomic_sub_fetch(&live, 1, __ATOMIC_RELAXED);
    __libc_free(p);
}
#endif

/* Checks what every failure must look like. */
static void check_failure(lsc_status st, const lsc_error *err) {
    CHECK(st != LSC_OK);
    CHECK(err->status == st);
    CHECK(err->message[0] != '\0');
    CHECK(strchr(err->message, '\n') == NULL);
    CHECK(strlen(err->message) < LSC_ERROR_MESSAGE_SIZE);
}

/* One operation under test: returns its status; frees what it made. */
typedef lsc_status (*op_fn)(lsc_error *err);

/* Runs `op` with the k-th allocation failing for k = 1, 2, ... (every k up to
 * `dense`, then every `step`-th) until it succeeds with no failure injected:
 * each failing run must follow the contract and leave no block allocated.
 * Returns the number of runs. */
static int fail_every_allocation(const char *what, op_fn op, long dense, long step) {
    int runs = 0, bad = 0;
    lsc_error warm;
    CHECK(op(&warm) == LSC_OK); /* lets objects grow their kept scratch first */
    for (long k = 1;; k = k < dense ? k + 1 : k + step) {
        lsc_error err = {0};
        long before = live;
        n_allocs = 0;
        fail_at = k;
        lsc_status st = op(&err);
        fail_at = 0;
        runs++;
        if (live != before) {
            if (!bad++) fprintf(stderr, "%s: %ld blocks leaked when allocation %ld failed\n", what, live - before, k);
            CHECK(live == before);
        }
        if (n_allocs < k) { /* no allocation failed: the op ran to its end */
            CHECK(st == LSC_OK);
            break;
        }
        if (st == LSC_OK) continue; /* a failure the op may absorb (a cache, say) */
        check_failure(st, &err);
    }
    printf("     %s: %d runs with one allocation failing\n", what, runs);
    return runs;
}

static lsc_status op_model_load(lsc_error *err) {
    lsc_model *m = (lsc_model *)&m;
    lsc_status st = lsc_model_load(dir, lsc_model_default_params(), &m, err);
    CHECK((st == LSC_OK) == (m != NULL));
    lsc_model_free(m);
    return st;
}

static lsc_model *model;
static lsc_tokenizer *tok;

static lsc_status op_ctx_forward(lsc_error *err) {
    lsc_ctx *c = (lsc_ctx *)&c;
    lsc_ctx_params p = lsc_ctx_default_params();
    p.n_threads = 1;
    lsc_status st = lsc_ctx_new(model, p, &c, err);
    CHECK((st == LSC_OK) == (c != NULL));
    if (st) return st;
    int32_t ids[4] = {464, 2068, 7586, 21831};
    if ((st = lsc_ctx_forward(c, ids, 3, LSC_LOGITS_ALL, err)) == LSC_OK)
        st = lsc_ctx_forward(c, ids + 3, 1, LSC_LOGITS_LAST, err);
    lsc_ctx_free(c);
    return st;
}

static lsc_status op_tokenizer(lsc_error *err) {
    static const char text[] = "Hello, world! <|endoftext|> caf\xc3\xa9 \xf0\x9f\x98\x80  x";
    int32_t *ids = (int32_t *)&ids;
    size_t n = 99;
    lsc_status st = lsc_tokenizer_encode(tok, text, sizeof text - 1, 0, &ids, &n, err);
    if (st) {
        CHECK(ids == NULL);
        return st;
    }
    char *back = (char *)&back;
    size_t len;
    st = lsc_tokenizer_decode(tok, ids, n, &back, &len, err);
    CHECK((st == LSC_OK) == (back != NULL));
    if (st == LSC_OK) CHECK(len == sizeof text - 1 && !memcmp(back, text, len));
    lsc_free(back);
    lsc_free(ids);
    return st;
}

static lsc_status op_tokenizer_load(lsc_error *err) {
    lsc_tokenizer *t = (lsc_tokenizer *)&t;
    lsc_status st = lsc_tokenizer_load(dir, &t, err);
    CHECK((st == LSC_OK) == (t != NULL));
    lsc_tokenizer_free(t);
    return st;
}

static lsc_status op_sampler(lsc_error *err) {
    lsc_sampler_params p = lsc_sampler_default_params();
    p.do_sample = 1;
    p.top_k = 5;
    p.top_p = 0.9;
    p.repetition_penalty = 1.3f;
    lsc_sampler *s = (lsc_sampler *)&s;
    lsc_status st = lsc_sampler_new(p, &s, err);
    CHECK((st == LSC_OK) == (s != NULL));
    if (st) return st;
    float logits[64];
    for (int i = 0; i < 64; i++) logits[i] = (float)((i * 37) % 11);
    int32_t prev[2] = {3, 9}, out = -1;
    st = lsc_sampler_sample(s, logits, 64, prev, 2, &out, err);
    if (st == LSC_OK) CHECK(out >= 0 && out < 64);
    lsc_sampler_free(s);
    return st;
}

static void test_allocation_failures(void) {
    if (!INJECT) {
        printf("SKIP test_allocation_failures: AddressSanitizer owns malloc (the plain build runs it)\n");
        return;
    }
    fail_every_allocation("lsc_model_load", op_model_load, 100000, 1);
    fail_every_allocation("lsc_ctx_new + lsc_ctx_forward", op_ctx_forward, 100000, 1);
    fail_every_allocation("lsc_tokenizer_encode + decode", op_tokenizer, 100000, 1);
    fail_every_allocation("lsc_sampler_new + sample", op_sampler, 100000, 1);
    /* loading the 50257-token vocabulary makes ~10^5 allocations: sample them */
    fail_every_allocation("lsc_tokenizer_load", op_tokenizer_load, 200, 4999);
}

/* ------------------------------------------------------------------------ */
/* Failures of each call: status, message, out-pointers                      */
/* ------------------------------------------------------------------------ */

/* Adds 1 to every activation it sees (it must not run once removed). */
static int poison(lsc_activation *a, void *ud) {
    size_t n = 1;
    for (int i = 0; i < a->n_dims; i++) n *= (size_t)a->shape[i];
    for (size_t i = 0; i < n; i++) a->data[i] += 1;
    ++*(int *)ud;
    return 0;
}

static void test_failures_fill_error(void) {
    lsc_error err;
    lsc_model *m = (lsc_model *)&m;
    check_failure(lsc_model_load("/nonexistent/model", lsc_model_default_params(), &m, &err), &err);
    CHECK(m == NULL);
    m = (lsc_model *)&m;
    check_failure(lsc_model_load(NULL, lsc_model_default_params(), &m, &err), &err);
    CHECK(m == NULL);
    check_failure(lsc_model_load(dir, lsc_model_default_params(), NULL, &err), &err);
    /* err may be NULL everywhere */
    CHECK(lsc_model_load("/nonexistent/model", lsc_model_default_params(), &m, NULL) != LSC_OK);

    lsc_tokenizer *t = (lsc_tokenizer *)&t;
    check_failure(lsc_tokenizer_load("/nonexistent/model", &t, &err), &err);
    CHECK(t == NULL);

    lsc_ctx *c = (lsc_ctx *)&c;
    lsc_ctx_params p = lsc_ctx_default_params();
    p.n_ctx = 1 << 30;
    check_failure(lsc_ctx_new(model, p, &c, &err), &err);
    CHECK(c == NULL);
    p.n_ctx = 4;
    CHECK(lsc_ctx_new(model, p, &c, &err) == LSC_OK);
    int32_t ids[5] = {1, 2, 3, 4, 5}, bad[2] = {1, 1 << 30};
    check_failure(lsc_ctx_forward(c, ids, 5, LSC_LOGITS_LAST, &err), &err);
    CHECK(err.status == LSC_ERR_CONTEXT_FULL);
    check_failure(lsc_ctx_forward(c, bad, 2, LSC_LOGITS_LAST, &err), &err);
    check_failure(lsc_ctx_forward(c, ids, 0, LSC_LOGITS_LAST, &err), &err);
    check_failure(lsc_ctx_forward(c, NULL, 2, LSC_LOGITS_LAST, &err), &err);
    check_failure(lsc_ctx_forward(c, ids, 2, (lsc_logits_mode)7, &err), &err);
    check_failure(lsc_ctx_forward(NULL, ids, 2, LSC_LOGITS_LAST, &err), &err);
    CHECK(lsc_ctx_n_past(c) == 0);
    int h = 0, calls = 0;
    check_failure(lsc_ctx_add_hook(c, "no.such.point", poison, &calls, &h, &err), &err);
    check_failure(lsc_ctx_add_hook(c, "*", NULL, NULL, &h, &err), &err);
    lsc_ctx_free(c);

    int32_t *out = (int32_t *)&out;
    size_t n = 7;
    check_failure(lsc_tokenizer_encode(tok, "a\xff", 2, 0, &out, &n, &err), &err);
    CHECK(out == NULL);
    char *text = (char *)&text;
    int32_t oob[2] = {5, -3};
    check_failure(lsc_tokenizer_decode(tok, oob, 2, &text, &n, &err), &err);
    CHECK(text == NULL);

    lsc_sampler_params sp = lsc_sampler_default_params();
    sp.top_p = 2;
    lsc_sampler *s = (lsc_sampler *)&s;
    check_failure(lsc_sampler_new(sp, &s, &err), &err);
    CHECK(s == NULL);

    /* every free accepts NULL */
    lsc_model_free(NULL);
    lsc_ctx_free(NULL);
    lsc_tokenizer_free(NULL);
    lsc_sampler_free(NULL);
    lsc_free(NULL);
    lsc_ctx_reset(NULL);
    lsc_ctx_remove_hook(NULL, 1);
    lsc_ctx_clear_hooks(NULL);
}

/* ------------------------------------------------------------------------ */
/* Hooks after a run that failed halfway                                     */
/* ------------------------------------------------------------------------ */

/* Aborts at the *(int *)ud-th call, counting down. */
static int abort_after(lsc_activation *a, void *ud) {
    (void)a;
    return --*(int *)ud == 0;
}

static void test_hooks_removed_after_failure(void) {
    lsc_error err;
    lsc_ctx *ref = NULL, *c = NULL;
    CHECK(lsc_ctx_new(model, lsc_ctx_default_params(), &ref, &err) == LSC_OK);
    CHECK(lsc_ctx_new(model, lsc_ctx_default_params(), &c, &err) == LSC_OK);
    int32_t ids[4] = {464, 2068, 7586, 21831};
    CHECK(lsc_ctx_forward(ref, ids, 4, LSC_LOGITS_ALL, &err) == LSC_OK);
    size_t V = (size_t)lsc_model_n_vocab(model);
    int n_points = lsc_model_n_hook_points(model);
    /* abort at every point in turn, with a poisoning hook registered before */
    for (int at = 1; at <= n_points; at++) {
        int calls = 0, left = at, h1, h2;
        CHECK(lsc_ctx_add_hook(c, "*", poison, &calls, &h1, &err) == LSC_OK);
        CHECK(lsc_ctx_add_hook(c, "*", abort_after, &left, &h2, &err) == LSC_OK);
        CHECK(lsc_ctx_forward(c, ids, 4, LSC_LOGITS_ALL, &err) == LSC_ERR_HOOK);
        CHECK(lsc_ctx_n_past(c) == 0 && lsc_ctx_logits(c, NULL) == NULL);
        lsc_ctx_remove_hook(c, h2);
        lsc_ctx_remove_hook(c, h1);
        calls = 0;
        CHECK(lsc_ctx_forward(c, ids, 4, LSC_LOGITS_ALL, &err) == LSC_OK);
        CHECK(calls == 0);
        const float *a = lsc_ctx_logits(c, NULL), *b = lsc_ctx_logits(ref, NULL);
        double d = 0;
        for (size_t i = 0; i < 4 * V; i++) d = fmax(d, fabs((double)a[i] - (double)b[i]));
        CHECK(d == 0);
        lsc_ctx_reset(c);
    }
    /* clear_hooks after a failure, and a context freed with hooks still on */
    int calls = 0, left = 7, h;
    CHECK(lsc_ctx_add_hook(c, "blocks.*", poison, &calls, &h, &err) == LSC_OK);
    CHECK(lsc_ctx_add_hook(c, "*", abort_after, &left, &h, &err) == LSC_OK);
    CHECK(lsc_ctx_forward(c, ids, 4, LSC_LOGITS_ALL, &err) == LSC_ERR_HOOK);
    lsc_ctx_clear_hooks(c);
    calls = 0;
    CHECK(lsc_ctx_forward(c, ids, 4, LSC_LOGITS_ALL, &err) == LSC_OK && calls == 0);
    CHECK(!memcmp(lsc_ctx_logits(c, NULL), lsc_ctx_logits(ref, NULL), 4 * V * sizeof(float)));
    CHECK(lsc_ctx_add_hook(c, "*", poison, &calls, &h, &err) == LSC_OK);
    lsc_ctx_free(c);
    lsc_ctx_free(ref);
}

int main(void) {
    const char *root = getenv("LSC_FIXTURES");
    snprintf(dir, sizeof dir, "%s/tiny", root ? root : "build/fixtures");
    lsc_error err;
    if (lsc_model_load(dir, lsc_model_default_params(), &model, &err) ||
        lsc_tokenizer_load(dir, &tok, &err)) {
        fprintf(stderr, "cannot load %s: %s (run 'make fixtures')\n", dir, err.message);
        return EXIT_FAILURE;
    }
    RUN(test_failures_fill_error);
    RUN(test_hooks_removed_after_failure);
    lsc_tokenizer_set_cache(tok, false); /* each run then allocates the same */
    RUN(test_allocation_failures);
    lsc_tokenizer_free(tok);
    lsc_model_free(model);
    return CHECK_DONE();
}
