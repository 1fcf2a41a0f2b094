/* metrics.h - the server's counters and latency histograms, written by the
 * routes and the scheduler, read by GET /metrics (Prometheus text format). */
#ifndef LSC_SERVER_METRICS_H
#define LSC_SERVER_METRICS_H

#include <stddef.h>

typedef struct metrics metrics;

metrics *metrics_new(void);
void metrics_free(metrics *m);

/* One finished HTTP request of a route ("/v1/completions") with its status. */
void metrics_request(metrics *m, const char *path, int status);
void metrics_tokens(metrics *m, size_t prompt_tokens, size_t generated_tokens);
/* Time from a request's arrival to its first generated token, and between
 * two generated tokens of one sequence, in seconds. */
void metrics_ttft(metrics *m, double seconds);
void metrics_token_latency(metrics *m, double seconds);
/* One forward step of the scheduler over n_seqs sequences. */
void metrics_step(metrics *m, size_t n_seqs);
/* The scheduler's gauges: sequences waiting and running. */
void metrics_gauges(metrics *m, size_t waiting, size_t running);

/* The Prometheus text exposition as a new string (free with free()). */
char *metrics_render(metrics *m);

#endif
