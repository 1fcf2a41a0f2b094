/* scheduler.h - continuous batching: one thread advances every running
 * sequence by one lsc_batch_forward step at a time; new sequences join the
 * next step, finished ones leave, up to `parallel` per step, with a bounded
 * queue behind them. Each sequence has its own context (KV cache), so what
 * it computes does not depend on what else runs (the batch contract). */
#ifndef LSC_SERVER_SCHEDULER_H
#define LSC_SERVER_SCHEDULER_H

#include "completion.h"
#include "metrics.h"

typedef struct scheduler scheduler;

typedef struct sched_params {
    int parallel;  /* sequences per step (contexts) */
    int queue;     /* sequences waiting for a slot, at most */
    int threads;   /* each context's threads (0 = all cores) */
} sched_params;

/* Creates the contexts and starts the batching thread. `tok` is only read
 * (lsc_tokenizer_decode / token_bytes, which are thread-safe). */
lsc_status sched_new(const lsc_model *model, const lsc_tokenizer *tok, sched_params p,
                     metrics *mt, scheduler **out, lsc_error *err);

/* Queues every choice of `r` (taking a reference per choice). Returns 0, or
 * -1 when the queue lacks room for all of them (nothing is queued). */
int sched_submit(scheduler *s, cmpl_req *r);

/* Sequences waiting and running now. */
void sched_counts(scheduler *s, size_t *waiting, size_t *running);

/* Stops the thread; sequences still queued or running fail with "the server
 * is shutting down", and later submits are refused. */
void sched_stop(scheduler *s);

/* sched_stop, then frees the contexts. NULL is fine. */
void sched_free(scheduler *s);

#endif
