/* pool.c - the persistent thread pool: spin-then-futex workers (see pool.h).
 *
 * Chosen over OpenMP by measurement (bench/README.md): an empty job round
 * trip costs about the same as libgomp's, without tying the library to one
 * OpenMP runtime or its environment variables, and the pool's threads belong
 * to one lsc_ctx instead of the process. */
#include "pool.h"
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* How long a waiting thread spins before it sleeps on the futex. */
#define SPIN_NS 50000L

struct lsc_pool {
    int n_threads;
    pthread_t *threads;            /* [n_threads - 1] workers */
    lsc_pool_fn fn;                /* the current job */
    void *arg;
    _Atomic uint32_t gen;          /* bumped once per job (and once to stop) */
    _Atomic uint32_t pending;      /* workers still running the current job */
    _Atomic uint32_t n_sleeping;   /* workers asleep on `gen` */
    _Atomic uint32_t caller_sleeping; /* the caller is asleep on `pending` */
    _Atomic int stop;
};

typedef struct worker_arg {
    lsc_pool *pool;
    int ith;
} worker_arg;

static void futex_wait(_Atomic uint32_t *addr, uint32_t expected) {
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *addr) {
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Spins while (*addr == value) == equal, for at most SPIN_NS; true when the
 * condition ended, false when the time ran out. */
static bool spin_while(_Atomic uint32_t *addr, uint32_t value, bool equal) {
    long start = 0;
    for (unsigned i = 0;; i++) {
        if ((atomic_load_explicit(addr, memory_order_acquire) == value) != equal) return true;
        cpu_relax();
        if ((i & 255) == 255) {
            long t = now_ns();
            if (!start) start = t;
            else if (t - start > SPIN_NS) return false;
        }
    }
}

/* A worker: waits for each new generation, runs the job, reports done. */
static void *worker_main(void *p) {
    worker_arg *wa = p;
    lsc_pool *pool = wa->pool;
    int ith = wa->ith;
    free(wa);
    uint32_t seen = 0;
    for (;;) {
        if (!spin_while(&pool->gen, seen, true)) {
            atomic_fetch_add(&pool->n_sleeping, 1);
            while (atomic_load(&pool->gen) == seen) futex_wait(&pool->gen, seen);
            atomic_fetch_sub(&pool->n_sleeping, 1);
        }
        seen = atomic_load_explicit(&pool->gen, memory_order_acquire);
        if (atomic_load(&pool->stop)) return NULL;
        pool->fn(pool->arg, ith, pool->n_threads);
        if (atomic_fetch_sub(&pool->pending, 1) == 1 && atomic_load(&pool->caller_sleeping))
            futex_wake_all(&pool->pending);
    }
}

int lsc_pool_n_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Bumps the generation and wakes sleeping workers. */
static void publish(lsc_pool *pool) {
    atomic_fetch_add(&pool->gen, 1);
    if (atomic_load(&pool->n_sleeping)) futex_wake_all(&pool->gen);
}

lsc_status lsc_pool_new(int n_threads, lsc_pool **out, lsc_error *err) {
    *out = NULL;
    if (n_threads < 0 || n_threads > LSC_MAX_THREADS)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "thread count %d is outside [0, %d]",
                        n_threads, LSC_MAX_THREADS);
    if (n_threads == 0) n_threads = lsc_pool_n_cpus();
    lsc_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return lsc_fail(err, LSC_ERR_NOMEM, "thread pool: out of memory");
    pool->n_threads = 1;
    if (n_threads > 1) {
        pool->threads = calloc((size_t)n_threads - 1, sizeof *pool->threads);
        if (!pool->threads) {
            free(pool);
            return lsc_fail(err, LSC_ERR_NOMEM, "thread pool: out of memory");
        }
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        int rc = wa ? 0 : ENOMEM;
        if (wa) {
            wa->pool = pool;
            wa->ith = i;
            rc = pthread_create(&pool->threads[i - 1], NULL, worker_main, wa);
            if (rc) free(wa);
        }
        if (rc) {
            lsc_pool_free(pool);
            return lsc_fail(err, LSC_ERR_NOMEM, "thread pool: cannot start thread %d of %d: %s",
                            i + 1, n_threads, strerror(rc));
        }
        pool->n_threads = i + 1; /* workers started so far, for lsc_pool_free */
    }
    *out = pool;
    return LSC_OK;
}

void lsc_pool_free(lsc_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, 1);
    publish(pool);
    for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->threads[i - 1], NULL);
    free(pool->threads);
    free(pool);
}

int lsc_pool_n_threads(const lsc_pool *pool) { return pool ? pool->n_threads : 1; }

void lsc_pool_run(lsc_pool *pool, lsc_pool_fn fn, void *arg) {
    if (!pool || pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store(&pool->pending, (uint32_t)pool->n_threads - 1);
    publish(pool);
    fn(arg, 0, pool->n_threads);
    if (!spin_while(&pool->pending, 0, false)) {
        atomic_store(&pool->caller_sleeping, 1);
        uint32_t left;
        while ((left = atomic_load(&pool->pending)) != 0) futex_wait(&pool->pending, left);
        atomic_store(&pool->caller_sleeping, 0);
    }
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0) cpu_relax();
}

void lsc_pool_split(size_t n, size_t align, int ith, int nth, size_t *begin, size_t *end) {
    if (align == 0) align = 1;
    size_t units = (n + align - 1) / align;
    size_t per = units / (size_t)nth, extra = units % (size_t)nth;
    size_t u0 = (size_t)ith * per + ((size_t)ith < extra ? (size_t)ith : extra);
    size_t u1 = u0 + per + ((size_t)ith < extra ? 1 : 0);
    *begin = u0 * align < n ? u0 * align : n;
    *end = u1 * align < n ? u1 * align : n;
}

typedef struct for_job {
    lsc_pool_item_fn fn;
    void *arg;
    size_t n_items;
    _Atomic size_t next;
} for_job;

static void for_worker(void *p, int ith, int nth) {
    (void)nth;
    for_job *j = p;
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= j->n_items) return;
        j->fn(j->arg, i, ith);
    }
}

void lsc_pool_for(lsc_pool *pool, size_t n_items, lsc_pool_item_fn fn, void *arg) {
    if (n_items == 0) return;
    if (!pool || pool->n_threads == 1 || n_items == 1) {
        for (size_t i = 0; i < n_items; i++) fn(arg, i, 0);
        return;
    }
    for_job j = {fn, arg, n_items, 0};
    lsc_pool_run(pool, for_worker, &j);
}
