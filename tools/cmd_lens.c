/* cmd_lens.c - `logitscope lens`: the logit lens. For one position of the input,
 * each residual stream (the embeddings, then the output of every block) is
 * passed through ln_final, with its own statistics, and the unembedding
 * (lsc_ctx_logit_lens); the command prints each layer's top tokens and their
 * probabilities. --hook interventions apply to the run. With --plot FILE
 * (or as `logitscope plot lens -o FILE`) it also draws the lens with
 * plot_draw.c: per layer, the marked token's probability and rank, and the
 * top token with its probability and text. */
#include "cli.h"
#include "plot_draw.h"

#include <math.h>

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_POS = 2000, OPT_TOPK, OPT_PLOT, OPT_MARK, OPT_MARK_ID, OPT_MARK_NEXT };

static int lens_run(int argc, char **argv);
static int plot_lens_run(int argc, char **argv);

#define LENS_ABOUT                                                                         \
    "For each layer, the top tokens of the residual stream at position I read through\n"   \
    "ln_final and the unembedding: layer 0 is the embeddings (blocks.0.hook_resid_pre),\n" \
    "layer i the output of block i - 1 (blocks.{i-1}.hook_resid_post). The figure\n"       \
    "shows, per layer, the probability and rank (0 = top) of the marked token (default:\n" \
    "the final prediction, the last layer's top token) and the top token (12x3.3 in).\n"
#define LENS_OPTS(...)                                                                 \
    {"pos", 0, "I", OPT_POS, "the position (default -1, the last; negative counts from the end)"}, \
        {"top-k", 0, "K", OPT_TOPK, "how many top tokens per layer (default 5; 0 = all)"},      \
        __VA_ARGS__,                                                                        \
        {"mark", 0, "TOKEN", OPT_MARK, "the token the figure follows, as one token's text"},    \
        {"mark-id", 0, "ID", OPT_MARK_ID, "the token the figure follows, by id"},              \
        {"mark-next", 0, NULL, OPT_MARK_NEXT, "the figure follows the next input token"},      \
        PLOT_FIGURE_OPTIONS, {0}
#define LENS_JSON                                                                           \
    "  {\"pos\", \"id\", \"layers\": [{\"layer\", \"stream\",\n"                             \
    "   \"top\": [{\"rank\", \"id\", \"token\", \"logit\", \"prob\", \"logprob\"}]}],\n"          \
    "   \"plot\" (with a figure): {\"file\", ..., \"mark\", \"mark_prob\", \"mark_rank\", \"top_id\"}}\n"

static const cli_opt lens_opts[] = {
    LENS_OPTS({"plot", 0, "FILE", OPT_PLOT, "also draw the figure into FILE.png|svg|pdf"})};
static const cli_opt plot_lens_opts[] = {
    LENS_OPTS({"output", 'o', "FILE", OPT_PLOT, "the figure's file: FILE.png|svg|pdf"})};

const cli_command cli_cmd_lens = {
    .name = "lens",
    .summary = "logit lens: each layer's top tokens at a position (--pos, --top-k)",
    .synopsis = "[options] (TEXT | --text T | --ids 1,2,3)",
    .about = LENS_ABOUT,
    .groups = CLI_MODEL | CLI_RUN | CLI_INPUT | CLI_HOOKS | CLI_OUTPUT,
    .opts = lens_opts,
    .json = LENS_JSON,
    .run = lens_run,
};

/* `plot lens`: the same command drawing its figure, without the table. */
static const cli_command plot_lens_cmd = {
    .name = "plot lens",
    .summary = "the logit lens figure",
    .synopsis = "-o FILE [options] (TEXT | --text T | --ids 1,2,3)",
    .about = LENS_ABOUT,
    .groups = CLI_MODEL | CLI_RUN | CLI_INPUT | CLI_HOOKS | CLI_OUTPUT,
    .opts = plot_lens_opts,
    .json = LENS_JSON,
    .run = plot_lens_run,
};

/* Prints a token's text quoted, with \\, ', and control bytes escaped. */
static void print_token(const lsc_tokenizer *tok, int32_t id) {
    char *s = NULL;
    size_t n = 0;
    if (lsc_tokenizer_decode(tok, &id, 1, &s, &n, NULL) != LSC_OK) {
        printf("<%d>", id);
        return;
    }
    putchar('\'');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\\' || ch == '\'') printf("\\%c", ch);
        else if (ch == '\n') fputs("\\n", stdout);
        else if (ch == '\t') fputs("\\t", stdout);
        else if (ch < 0x20 || ch == 0x7f) printf("\\x%02x", ch);
        else putchar(ch);
    }
    putchar('\'');
    lsc_free(s);
}

/* Draws the lens (rows lens[(L + 1) * V] of logits, one per layer) into
 * `path`: three panels over the layers, the probability of token `mark`, its
 * rank (0 = top; drawn as log10(rank + 1), each point labelled) and the top token's probability
 * (labelled with its text where it differs from the layer before). Adds
 * what was drawn to `json` (may be
 * NULL) as "plot". Prints the error and returns false on failure (no file
 * is left behind). Owns nothing on return. */
static bool draw_lens(const char *path, plot_figure *fig, const lsc_tokenizer *tok,
                      const float *lens, size_t L, size_t V, int32_t mark, cJSON *json,
                      size_t *n_drawn, double *seconds) {
    enum { LABEL = 48 };
    size_t n = L + 1;
    float *x = malloc(n * sizeof *x), *pm = malloc(n * sizeof *pm), *lr = malloc(n * sizeof *lr),
          *pt = malloc(n * sizeof *pt), *prob = malloc(V * sizeof *prob);
    long *rank = malloc(n * sizeof *rank);
    int32_t *top = malloc(n * sizeof *top);
    char *text = malloc(n * 2 * LABEL);
    const char **rank_lab = malloc(n * sizeof *rank_lab), **top_lab = malloc(n * sizeof *top_lab);
    bool ok = false;
    if (!x || !pm || !lr || !pt || !prob || !rank || !top || !text || !rank_lab || !top_lab) {
        cli_error("out of memory");
        goto done;
    }
    for (size_t l = 0; l < n; l++) {
        const float *row = lens + l * V;
        lsc_softmax(row, V, prob);
        long r = 0; /* 0 = top, as every command counts */
        for (size_t j = 0; j < V; j++) r += row[j] > row[mark];
        top[l] = (int32_t)lsc_argmax(row, V);
        x[l] = (float)l;
        pm[l] = prob[mark];
        rank[l] = r;
        lr[l] = (float)log10((double)r + 1);
        pt[l] = prob[top[l]];
        rank_lab[l] = text + 2 * l * LABEL;
        top_lab[l] = l > 0 && top[l] == top[l - 1] ? NULL : text + (2 * l + 1) * LABEL;
        snprintf(text + 2 * l * LABEL, LABEL, "%ld", r);
        plot_token_label(tok, top[l], text + (2 * l + 1) * LABEL, LABEL);
    }
    char mark_text[LABEL], t0[96], t1[96];
    plot_token_label(tok, mark, mark_text, sizeof mark_text);
    snprintf(t0, sizeof t0, "P(%s) per layer", mark_text);
    snprintf(t1, sizeof t1, "Rank of %s (0 = top)", mark_text);
    const char *xl = "Layer (0 = embeddings)";
    double xt = ceil((double)n / 13.0); /* whole layers, at most 13 labels */
    fig->n_panels = 3;
    fig->panels[0] = (plot_panel){x, pm, n, t0, xl, "Probability", -1, NULL, true, xt, NULL};
    fig->panels[1] = (plot_panel){x, lr, n, t1, xl, "log10(rank + 1)", -1, NULL, true, xt, rank_lab};
    fig->panels[2] = (plot_panel){x, pt, n, "Top token per layer", xl, "Probability", -1, NULL,
                                  true, xt, top_lab};
    plot_info info;
    double t = plot_now();
    if (!plot_render(fig, path, &info)) goto done;
    *seconds = plot_now() - t;
    *n_drawn = 0;
    for (int k = 0; k < fig->n_panels; k++) *n_drawn += info.panels[k].n_drawn;
    if (json) {
        cJSON *o = plot_info_json(path, &info, fig->n_panels, *seconds);
        if (o) {
            double *v = malloc(n * sizeof *v);
            cJSON_AddNumberToObject(o, "mark", mark);
            for (int which = 0; v && which < 3; which++) {
                for (size_t l = 0; l < n; l++)
                    v[l] = which == 0 ? pm[l] : which == 1 ? (double)rank[l] : (double)top[l];
                cJSON_AddItemToObject(o, which == 0 ? "mark_prob" : which == 1 ? "mark_rank" : "top_id",
                                      cJSON_CreateDoubleArray(v, (int)n));
            }
            free(v);
            cJSON_AddItemToObject(json, "plot", o);
        }
    }
    ok = true;
done:
    free(x), free(pm), free(lr), free(pt), free(prob), free(rank), free(top), free(text);
    free(rank_lab), free(top_lab);
    return ok;
}

/* `lens` (figure_cmd false: the table, --plot optional) and `plot lens`
 * (figure_cmd true: -o FILE required, no table). */
static int lens_main(int argc, char **argv, bool figure_cmd) {
    cli_args a;
    cli_args_begin(&a, figure_cmd ? &plot_lens_cmd : &cli_cmd_lens, argc, argv);
    const char *pos_arg = NULL, *plot_path = NULL, *mark_arg = NULL;
    int mark_opt = 0, n_mark_opts = 0;
    plot_figure fig = {.width_in = 12.0, .height_in = 3.3, .dpi = 100, .theme = PLOT_LIGHT};
    long k = 5;
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        int r = plot_figure_option(&fig, opt, a.val);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        switch (opt) {
        case OPT_POS: pos_arg = a.val; break;
        case OPT_TOPK:
            if (!cli_parse_top_k(a.flag, a.val, &k)) return CLI_EXIT_USAGE;
            break;
        case OPT_PLOT: plot_path = a.val; break;
        case OPT_MARK:
        case OPT_MARK_ID:
        case OPT_MARK_NEXT: mark_opt = opt, mark_arg = a.val, n_mark_opts++; break;
        }
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;
    if (figure_cmd && !plot_path)
        return cli_usage_error("plot lens: give the output file with -o FILE.png|.svg|.pdf");
    if (!plot_path && n_mark_opts)
        return cli_usage_error("--mark, --mark-id and --mark-next choose the token --plot draws; "
                               "give --plot FILE");
    if (n_mark_opts > 1)
        return cli_usage_error("give at most one of --mark, --mark-id, --mark-next");
    if (plot_path && !plot_check_output(plot_path)) return 1;

    int rc = 1;
    lsc_model *model = NULL;
    lsc_tokenizer *tok = NULL;
    lsc_ctx *ctx = NULL;
    cli_hooks *hooks = NULL;
    int32_t *ids = NULL, *top = NULL;
    float *lens = NULL, *prob = NULL;
    size_t n = 0;
    lsc_error err;
    if (!(model = cli_load_model(&c)) || !(tok = cli_load_tokenizer(&c))) goto done;
    if (!cli_input_ids(&c, tok, &ids, &n)) goto done;
    size_t upos = n - 1;
    if (pos_arg && !cli_parse_pos(pos_arg, n, &upos)) goto done;
    long pos = (long)upos;
    size_t V = (size_t)lsc_model_n_vocab(model), L = (size_t)lsc_model_n_layer(model);
    long mark = -1; /* -1: the last layer's top token */
    if (mark_opt == OPT_MARK_NEXT) {
        if (pos + 1 >= (long)n) {
            cli_error("--mark-next: position %ld is the last; there is no next input token", pos);
            goto done;
        }
        mark = ids[pos + 1];
    } else if (mark_opt == OPT_MARK_ID) {
        if (!cli_parse_int(mark_arg, 0, (long)V - 1, &mark)) {
            cli_error("--mark-id: '%s' is not a token id from 0 to %zu", mark_arg, V - 1);
            goto done;
        }
    } else if (mark_opt == OPT_MARK) {
        int32_t mid;
        if (!cli_single_token(tok, "--mark", mark_arg, c.no_special, &mid)) goto done;
        if ((size_t)mid >= V) {
            cli_error("--mark: id %d is outside the model's vocabulary of %zu", (int)mid, V);
            goto done;
        }
        mark = mid;
    }
    lsc_ctx_params cp = lsc_ctx_default_params();
    cp.n_threads = c.threads;
    if (lsc_ctx_new(model, cp, &ctx, &err)) {
        cli_error("%s", err.message);
        goto done;
    }
    if (!cli_hooks_attach(&c, ctx, tok, &hooks)) goto done;
    if (k == 0 || (size_t)k > V) k = (long)V;
    lens = malloc((L + 1) * V * sizeof *lens);
    prob = malloc(V * sizeof *prob);
    top = malloc((size_t)k * sizeof *top);
    if (!lens || !prob || !top) {
        cli_error("out of memory");
        goto done;
    }
    if (lsc_ctx_logit_lens(ctx, ids, n, (int)pos, 1, lens, &err) ||
        lsc_top_k(lens, V, (size_t)k, top, &err)) { /* checks k once */
        cli_error("%s", err.message);
        goto done;
    }
    if (!cli_hooks_finish(hooks)) goto done;
    cJSON *root = NULL, *layers = NULL;
    if (c.json && !(root = cJSON_CreateObject())) {
        cli_error("out of memory");
        goto done;
    }
    size_t drawn = 0;
    double secs = 0;
    if (plot_path) {
        if (mark < 0) mark = (long)lsc_argmax(lens + L * V, V); /* the final prediction */
        if (!draw_lens(plot_path, &fig, tok, lens, L, V, (int32_t)mark, root, &drawn, &secs)) {
            cJSON_Delete(root);
            goto done;
        }
        if (figure_cmd && !c.json) goto wrote; /* no table */
    }
    if (c.json) {
        cJSON_AddNumberToObject(root, "pos", (double)pos);
        cJSON_AddNumberToObject(root, "id", ids[pos]);
        layers = cJSON_AddArrayToObject(root, "layers");
    } else {
        printf("logit lens at position %ld (token ", pos);
        print_token(tok, ids[pos]);
        printf(", id %d): top %ld tokens per layer, probability after ln_final\n", ids[pos], k);
    }
    for (size_t l = 0; l <= L; l++) {
        const float *row = lens + l * V;
        char stream[64];
        if (l == 0) snprintf(stream, sizeof stream, "blocks.0.hook_resid_pre");
        else snprintf(stream, sizeof stream, "blocks.%zu.hook_resid_post", l - 1);
        lsc_softmax(row, V, prob);
        double lse = lsc_logsumexp(row, V);
        lsc_top_k(row, V, (size_t)k, top, NULL);
        if (c.json) {
            cJSON *o = cJSON_CreateObject(), *arr;
            cJSON_AddNumberToObject(o, "layer", (double)l);
            cJSON_AddStringToObject(o, "stream", stream);
            arr = cJSON_AddArrayToObject(o, "top");
            for (long i = 0; i < k; i++) {
                cJSON *t = cJSON_CreateObject();
                cJSON_AddNumberToObject(t, "rank", (double)i);
                char *s = NULL;
                size_t sl;
                cJSON_AddNumberToObject(t, "id", top[i]);
                if (lsc_tokenizer_decode(tok, &top[i], 1, &s, &sl, NULL) == LSC_OK)
                    cJSON_AddStringToObject(t, "token", s);
                lsc_free(s);
                cJSON_AddNumberToObject(t, "logit", row[top[i]]);
                cJSON_AddNumberToObject(t, "prob", prob[top[i]]);
                cJSON_AddNumberToObject(t, "logprob", (double)row[top[i]] - lse);
                cJSON_AddItemToArray(arr, t);
            }
            cJSON_AddItemToArray(layers, o);
        } else {
            printf("%3zu %-28s", l, stream);
            for (long i = 0; i < k; i++) {
                putchar(' ');
                print_token(tok, top[i]);
                printf(" %.3f", prob[top[i]]);
            }
            putchar('\n');
        }
    }
    if (c.json && cli_print_json(root) != 0) goto done;
wrote:
    if (plot_path && !c.json)
        printf("wrote %s (lens, %zu layers, %d panels, %zu points) in %.3f s\n", plot_path, L + 1,
               fig.n_panels, drawn, secs);
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    free(ids);
    free(top);
    free(lens);
    free(prob);
    cli_hooks_free(hooks);
    lsc_ctx_free(ctx);
    lsc_tokenizer_free(tok);
    lsc_model_free(model);
    return rc;
}

static int lens_run(int argc, char **argv) { return lens_main(argc, argv, false); }

static int plot_lens_run(int argc, char **argv) { return lens_main(argc, argv, true); }

int cli_plot_lens(int argc, char **argv) { return plot_lens_run(argc, argv); }
