/* completion.h - one completion request as the scheduler runs it: its
 * parameters (already validated by the wire layer, api_completions.c) and,
 * per choice, the tokens, log-probabilities and text the scheduler fills in
 * as the sequence advances. The connection thread waits on `cv` and reads
 * what is new under `mu`. */
#ifndef LSC_SERVER_COMPLETION_H
#define LSC_SERVER_COMPLETION_H

#include "logitscope.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define CMPL_MAX_LOGPROBS 20
#define CMPL_MAX_STOP 4

/* One token of a choice: an echoed prompt token or a generated one. */
typedef struct tok_rec {
    int32_t id;
    int has_lp;  /* 0: the first prompt token (nothing predicts it) */
    float lp;    /* log-softmax of the raw logits at this token */
    int n_top;   /* the top `logprobs` tokens of that row, in rank order */
    int32_t top_id[CMPL_MAX_LOGPROBS];
    float top_lp[CMPL_MAX_LOGPROBS];
} tok_rec;

typedef struct cmpl_choice {
    int index;        /* prompt_index * n + k, as vLLM numbers them */
    int prompt_index;
    /* written by the scheduler under req->mu */
    tok_rec *toks;    /* echoed prompt tokens (with echo) then generated ones */
    size_t n_toks, cap_toks;
    size_t n_gen;     /* generated tokens */
    char *gen_text;   /* the generated text so far (eos left out, cut at a stop string) */
    size_t gen_len;
    size_t gen_safe;  /* bytes of gen_text that can no longer change (streaming) */
    int finished;
    const char *finish_reason; /* "length" or "stop" */
    int failed;       /* the model failed on this sequence: error says why */
    char error[LSC_ERROR_MESSAGE_SIZE];
} cmpl_choice;

typedef struct cmpl_req {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;         /* the connection and the scheduler's sequences */
    int cancelled;    /* the client went away: the scheduler drops its sequences */
    /* parameters */
    int max_tokens;
    int echo;
    int logprobs;     /* -1: no logprobs object; else 0..20 top entries */
    int stream, include_usage;
    int ignore_eos;
    lsc_sampler_params sampling; /* do_sample 0 when temperature is 0 */
    double presence_penalty, frequency_penalty;
    int32_t *bias_ids; /* logit_bias */
    float *bias_vals;
    size_t n_bias;
    char *stop[CMPL_MAX_STOP];
    size_t stop_len[CMPL_MAX_STOP];
    int n_stop;
    int n;            /* choices per prompt */
    int n_prompts;
    int32_t **prompts;
    size_t *n_prompt;
    int n_choices;    /* n_prompts * n */
    cmpl_choice *choices;
    int n_finished;   /* choices finished (or failed) */
    double t_arrival;
} cmpl_req;

/* A new request with refs = 1 (the caller's); NULL when out of memory. */
cmpl_req *cmpl_req_new(void);
/* Drops one reference; the last frees everything. */
void cmpl_req_unref(cmpl_req *r);

#endif
