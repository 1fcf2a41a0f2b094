/* pool.h - a small persistent thread pool for the matrix work (not public).
 *
 * A pool of n threads is the calling thread plus n - 1 workers that live as
 * long as the pool. lsc_pool_run() hands one job to all of them and returns
 * when every thread has finished it; the caller is thread 0. Workers wait for
 * the next job by spinning briefly (a decode step dispatches ~50 jobs of
 * 0.1-1 ms each, separated by a few microseconds of serial work) and then
 * sleeping on a futex, so an idle pool costs no CPU.
 *
 * A pool is used by one thread at a time (the one that owns the lsc_ctx).
 * Every function accepts pool == NULL, which means "run on the caller only".
 */
#ifndef LSC_POOL_H
#define LSC_POOL_H

#include "logitscope.h"

typedef struct lsc_pool lsc_pool;

/* The job: called once on each thread with its index ith in [0, nth). */
typedef void (*lsc_pool_fn)(void *arg, int ith, int nth);

/* The number of CPUs this process may run on (at least 1). */
int lsc_pool_n_cpus(void);

/* Starts a pool of `n_threads` threads in all (0 = lsc_pool_n_cpus()); 1 gives
 * a pool with no workers. *out owns it; free with lsc_pool_free(). */
lsc_status lsc_pool_new(int n_threads, lsc_pool **out, lsc_error *err);

/* Stops and joins the workers and frees the pool. NULL is fine. */
void lsc_pool_free(lsc_pool *pool);

/* Threads in the pool (1 for NULL). */
int lsc_pool_n_threads(const lsc_pool *pool);

/* Runs fn(arg, ith, nth) on every thread of the pool (only on the caller when
 * pool is NULL or has one thread) and returns when all calls have returned. */
void lsc_pool_run(lsc_pool *pool, lsc_pool_fn fn, void *arg);

/* One item of a lsc_pool_for loop, run by thread ith of the pool (so that
 * an item may use that thread's scratch). */
typedef void (*lsc_pool_item_fn)(void *arg, size_t item, int ith);

/* Calls fn(arg, i, ith) once for every i in [0, n_items), the threads taking
 * the next item from a shared counter until none are left: a thread that the
 * OS deschedules (the machine may be shared) delays only its current item.
 * Returns when all items are done. */
void lsc_pool_for(lsc_pool *pool, size_t n_items, lsc_pool_item_fn fn, void *arg);

/* Splits [0, n) into nth nearly equal parts, each a multiple of `align`
 * except the last, and gives part ith as [*begin, *end). */
void lsc_pool_split(size_t n, size_t align, int ith, int nth, size_t *begin, size_t *end);

#endif
