/* cmd_plot.c - `logitscope plot logits|softmax|logsoftmax`: the notebook's figures
 * of a row of logits (every vocabulary entry as a dot, one token marked as a
 * red square), drawn by plot_draw.c into PNG, SVG or PDF. The row comes from
 * the model (--model with --text/--ids) or from a saved .npy (--npy). */
#include "cli.h"
#include "npy.h"
#include "plot_draw.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    OPT_OUT = 'o',
    OPT_POS = 2000,
    OPT_MARK,
    OPT_MARK_ID,
    OPT_MARK_NEXT,
    OPT_MARK_MAX,
    OPT_NO_MARK,
    OPT_NPY,
};

typedef enum plot_kind { KIND_LOGITS, KIND_SOFTMAX, KIND_LOGSOFTMAX } plot_kind;
typedef enum mark_mode { MARK_DEFAULT, MARK_NONE, MARK_NEXT, MARK_MAX, MARK_TOKEN, MARK_ID } mark_mode;

static const char *kind_names[] = {"logits", "softmax", "logsoftmax"};

static int run(int argc, char **argv);

static const cli_opt opts[] = {
    {"output", 'o', "FILE", OPT_OUT, "the figure's file: FILE.png|svg|pdf"},
    {"npy", 0, "LOGITS.npy", OPT_NPY, "plot saved logits [n_vocab] or [T, n_vocab] instead of a model"},
    {"pos", 0, "I", OPT_POS, "the position (default -1, the last; negative counts from the end)"},
    {"mark", 0, "TOKEN", OPT_MARK, "mark this token (one token's text)"},
    {"mark-id", 0, "ID", OPT_MARK_ID, "mark this token id"},
    {"mark-next", 0, NULL, OPT_MARK_NEXT, "mark the next input token (the default when there is one)"},
    {"mark-max", 0, NULL, OPT_MARK_MAX, "mark the most likely token"},
    {"no-mark", 0, NULL, OPT_NO_MARK, "mark nothing"},
    PLOT_FIGURE_OPTIONS,
    {0},
};

const cli_command cli_cmd_plot = {
    .name = "plot",
    .summary = "the notebook's figures: plot logits|softmax|logsoftmax|lens -o FILE.png|svg|pdf",
    .synopsis = "logits|softmax|logsoftmax -o FILE [options] (TEXT | --text T | --ids 1,2,3 |\n"
                "                       --npy LOGITS.npy)\n"
                "       logitscope plot lens -o FILE [options]   (logitscope plot lens --help)",
    .about = "  logits      the logits at a position over the vocabulary (10x3 in)\n"
             "  softmax     raw logits; softmax probabilities; logits against softmax (12x3.3 in)\n"
             "  logsoftmax  softmax; log-softmax; softmax against log-softmax (12x3.3 in)\n"
             "The default mark is the next input token when there is one, else the max.\n",
    .groups = CLI_MODEL | CLI_RUN | CLI_INPUT | CLI_HOOKS | CLI_OUTPUT,
    .opts = opts,
    .json = "  {\"file\", \"width\", \"height\", \"seconds\", \"panels\", \"kind\", \"pos\", \"n_vocab\",\n"
            "   \"mark\"}\n",
    .run = run,
};

/* The plotted data: the logits at one position, with what the labels need. */
typedef struct plot_data {
    float *logits;     /* [n_vocab], owned */
    size_t n_vocab;
    long pos, n_pos;   /* the position and the sequence length */
    int32_t next_id;   /* the input token after pos, or -1 */
    int32_t at_id;     /* the input token at pos, or -1 (--npy) */
} plot_data;

/* Resolves --pos (NULL = the last) against n positions with cli_parse_pos. */
static bool resolve_pos(const char *arg, long n, long *pos) {
    size_t p = (size_t)n - 1;
    if (arg && !cli_parse_pos(arg, (size_t)n, &p)) return false;
    *pos = (long)p;
    return true;
}

/* Loads the row from a .npy file of shape [V] or [T, V]. */
static bool load_npy(const char *path, const char *pos_arg, plot_data *d) {
    char err[512];
    npy_array a;
    if (npy_read_f32(path, (size_t)1 << 32, &a, err, sizeof err) != 0) {
        cli_error("%s", err);
        return false;
    }
    if ((a.n_dims != 1 && a.n_dims != 2) || a.shape[a.n_dims - 1] < 1 ||
        (a.n_dims == 2 && a.shape[0] < 1)) {
        free(a.data);
        cli_error("%s: expected logits of shape [n_vocab] or [positions, n_vocab]", path);
        return false;
    }
    long n = a.n_dims == 2 ? (long)a.shape[0] : 1;
    size_t v = (size_t)a.shape[a.n_dims - 1];
    if (!resolve_pos(pos_arg, n, &d->pos)) {
        free(a.data);
        return false;
    }
    d->n_pos = n;
    d->n_vocab = v;
    d->logits = malloc(v * sizeof(float));
    if (!d->logits) {
        free(a.data);
        cli_error("out of memory");
        return false;
    }
    memcpy(d->logits, a.data + (size_t)d->pos * v, v * sizeof(float));
    free(a.data);
    d->next_id = d->at_id = -1;
    return true;
}

/* Runs the model (with its --hook interventions) on ids[0..pos] and keeps
 * the logits at --pos. */
static bool load_model_row(cli_lm *lm, const char *pos_arg, plot_data *d) {
    if (!resolve_pos(pos_arg, (long)lm->n, &d->pos)) return false;
    const float *row = cli_lm_row(lm, (size_t)d->pos);
    if (!row) return false;
    d->n_vocab = lm->n_vocab;
    d->logits = malloc(d->n_vocab * sizeof(float));
    if (!d->logits) {
        cli_error("out of memory");
        return false;
    }
    memcpy(d->logits, row, d->n_vocab * sizeof(float));
    d->n_pos = (long)lm->n;
    d->at_id = lm->ids[d->pos];
    d->next_id = d->pos + 1 < (long)lm->n ? lm->ids[d->pos + 1] : -1;
    return true;
}

/* Prints what was drawn as one JSON object. */
static void print_json(const char *path, plot_kind kind, const plot_info *info, int n_panels,
                       double seconds, long mark, const plot_data *d) {
    cJSON *o = plot_info_json(path, info, n_panels, seconds);
    if (!o) return;
    cJSON_AddStringToObject(o, "kind", kind_names[kind]);
    cJSON_AddNumberToObject(o, "pos", (double)d->pos);
    cJSON_AddNumberToObject(o, "n_vocab", (double)d->n_vocab);
    if (mark >= 0) cJSON_AddNumberToObject(o, "mark", (double)mark);
    else cJSON_AddNullToObject(o, "mark");
    cli_print_json(o);
}

static int run(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        cli_print_usage(argc < 2 ? stderr : stdout, &cli_cmd_plot);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "lens")) return cli_plot_lens(argc - 1, argv + 1);
    plot_kind kind;
    if (!strcmp(argv[1], "logits")) kind = KIND_LOGITS;
    else if (!strcmp(argv[1], "softmax")) kind = KIND_SOFTMAX;
    else if (!strcmp(argv[1], "logsoftmax")) kind = KIND_LOGSOFTMAX;
    else
        return cli_usage_error("plot: unknown figure '%s' (logits, softmax, logsoftmax or lens)",
                               argv[1]);

    cli_args a;
    cli_args_begin(&a, &cli_cmd_plot, argc - 1, argv + 1);
    const char *out = NULL, *pos_arg = NULL, *mark_arg = NULL, *npy = NULL;
    mark_mode mmode = MARK_DEFAULT;
    int n_mark_opts = 0;
    plot_figure fig = {0};
    fig.width_in = kind == KIND_LOGITS ? 10.0 : 12.0;
    fig.height_in = kind == KIND_LOGITS ? 3.0 : 3.3;
    fig.dpi = 100;
    fig.theme = PLOT_LIGHT;
    long v;
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        int r = plot_figure_option(&fig, opt, a.val);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        switch (opt) {
        case OPT_OUT: out = a.val; break;
        case OPT_POS: pos_arg = a.val; break;
        case OPT_MARK: mmode = MARK_TOKEN, mark_arg = a.val, n_mark_opts++; break;
        case OPT_MARK_ID: mmode = MARK_ID, mark_arg = a.val, n_mark_opts++; break;
        case OPT_MARK_NEXT: mmode = MARK_NEXT, n_mark_opts++; break;
        case OPT_MARK_MAX: mmode = MARK_MAX, n_mark_opts++; break;
        case OPT_NO_MARK: mmode = MARK_NONE, n_mark_opts++; break;
        case OPT_NPY: npy = a.val; break;
        }
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;
    if (!out) return cli_usage_error("plot: give the output file with -o FILE.png|.svg|.pdf");
    if (n_mark_opts > 1)
        return cli_usage_error("give at most one of --mark, --mark-id, --mark-next, --mark-max, "
                               "--no-mark");
    if (!plot_check_output(out)) return 1;
    if (npy && (c.text || c.ids))
        return cli_usage_error("give the logits either with --npy or by running the model, not both");
    if (npy && mmode == MARK_TOKEN && !c.model)
        return cli_usage_error("--mark TOKEN needs --model for the tokenizer (or use --mark-id)");

    /* The data. */
    if (npy && (c.n_hooks || c.n_cache))
        return cli_usage_error("--hook and --cache need the model; they do not apply to --npy");
    int status = 1;
    cli_lm lm = {0};
    lsc_tokenizer *tok = NULL;
    plot_data d = {0};
    float *probs = NULL, *logprobs = NULL;
    if (npy) {
        if (c.model && !(tok = cli_load_tokenizer(&c))) goto done; /* for token labels */
        if (!load_npy(npy, pos_arg, &d)) goto done;
    } else {
        if (!cli_lm_open(&c, true, &lm) || !load_model_row(&lm, pos_arg, &d)) goto done;
        tok = lm.tok;
        if (!cli_hooks_finish(lm.hooks)) goto done; /* --cache-out; a --hook that never fired */
    }

    /* The marked token and its legend. */
    long mark = -1;
    char tokbuf[256], legend[320];
    legend[0] = '\0';
    if (mmode == MARK_DEFAULT) mmode = d.next_id >= 0 ? MARK_NEXT : MARK_MAX;
    switch (mmode) {
    case MARK_NEXT:
        if (d.next_id < 0) {
            cli_error(npy ? "--mark-next needs the input ids (use --mark-max or --mark-id with --npy)"
                          : "--mark-next: position %ld is the last; there is no next input token "
                            "(use --mark-max)", d.pos);
            goto done;
        }
        mark = d.next_id;
        snprintf(legend, sizeof legend, "Logit for next token");
        break;
    case MARK_MAX:
        mark = (long)lsc_argmax(d.logits, d.n_vocab);
        plot_token_label(tok, (int32_t)mark, tokbuf, sizeof tokbuf);
        snprintf(legend, sizeof legend, "Max logit (%s)", tokbuf);
        break;
    case MARK_ID:
        if (!cli_parse_int(mark_arg, 0, (long)d.n_vocab - 1, &v)) {
            cli_error("--mark-id: '%s' is not a token id from 0 to %zu", mark_arg, d.n_vocab - 1);
            goto done;
        }
        mark = v;
        plot_token_label(tok, (int32_t)mark, tokbuf, sizeof tokbuf);
        snprintf(legend, sizeof legend, "Logit for %s", tokbuf);
        break;
    case MARK_TOKEN: {
        int32_t mid;
        if (!cli_single_token(tok, "--mark", mark_arg, c.no_special, &mid)) goto done;
        mark = mid;
        if ((size_t)mark >= d.n_vocab) {
            cli_error("--mark: token id %ld is outside the logits' %zu entries", mark, d.n_vocab);
            goto done;
        }
        plot_token_label(tok, (int32_t)mark, tokbuf, sizeof tokbuf);
        snprintf(legend, sizeof legend, "Logit for %s", tokbuf);
        break;
    }
    default: break;
    }

    /* The figure. */
    char title[320];
    if (d.at_id >= 0 && tok) {
        plot_token_label(tok, d.at_id, tokbuf, sizeof tokbuf);
        snprintf(title, sizeof title, "Next-token logits after %s (position %ld)", tokbuf, d.pos);
    } else {
        snprintf(title, sizeof title, "Next-token logits at position %ld", d.pos);
    }
    const char *leg = mark >= 0 ? legend : NULL;
    if (kind != KIND_LOGITS) {
        probs = malloc(d.n_vocab * sizeof(float));
        logprobs = malloc(d.n_vocab * sizeof(float));
        if (!probs || !logprobs) {
            cli_error("out of memory");
            goto done;
        }
        lsc_softmax(d.logits, d.n_vocab, probs);
        lsc_log_softmax(d.logits, d.n_vocab, logprobs);
    }
    plot_panel *p = fig.panels;
    const char *vocab = "Vocab index", *raw = "Logits (raw)", *sm = "Softmax probability",
               *lsm = "Log-softmax";
    if (kind == KIND_LOGITS) {
        fig.n_panels = 1;
        p[0] = (plot_panel){NULL, d.logits, d.n_vocab, title, vocab, raw, mark, leg, false, 0, NULL};
    } else if (kind == KIND_SOFTMAX) {
        fig.n_panels = 3;
        p[0] = (plot_panel){NULL, d.logits, d.n_vocab, "Raw logits", vocab, raw, mark, leg, false, 0, NULL};
        p[1] = (plot_panel){NULL, probs, d.n_vocab, "Softmax probabilities", vocab, sm, mark, NULL, false, 0, NULL};
        p[2] = (plot_panel){d.logits, probs, d.n_vocab, "Logits vs. softmax", raw, sm, mark, NULL, false, 0, NULL};
    } else {
        fig.n_panels = 3;
        p[0] = (plot_panel){NULL, probs, d.n_vocab, "Softmax probabilities", vocab, sm, mark, leg, false, 0, NULL};
        p[1] = (plot_panel){NULL, logprobs, d.n_vocab, "Log-softmax", vocab, lsm, mark, NULL, false, 0, NULL};
        p[2] = (plot_panel){probs, logprobs, d.n_vocab, "Softmax vs. log-softmax", sm, lsm, mark,
                            NULL, false, 0, NULL};
    }
    plot_info info;
    double t0 = plot_now();
    if (!plot_render(&fig, out, &info)) goto done;
    double secs = plot_now() - t0;
    size_t drawn = 0;
    for (int k = 0; k < fig.n_panels; k++) drawn += info.panels[k].n_drawn;
    if (c.json)
        print_json(out, kind, &info, fig.n_panels, secs, mark, &d);
    else
        printf("wrote %s (%s, %.0fx%.0f %s, %d panel%s, %zu points) in %.3f s\n", out,
               kind_names[kind], info.width, info.height,
               strstr(out, ".png") || strstr(out, ".PNG") ? "px" : "pt", fig.n_panels,
               fig.n_panels > 1 ? "s" : "", drawn, secs);
    status = 0;
done:
    free(probs);
    free(logprobs);
    free(d.logits);
    if (npy) lsc_tokenizer_free(tok);
    cli_lm_close(&lm);
    return status;
}
