/* lens.c - `logitscope lens`: the logit lens. For one position of the input,
 * each residual stream (the embeddings, then the output of every block) is
 * passed through ln_final, with its own statistics, and the unembedding
 * (lsc_ctx_logit_lens); the command prints each layer's top tokens and their
 * probabilities. --hook interventions apply to the run. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_POS = 2000, OPT_TOPK, OPT_HELP };

static const char usage[] =
    "usage: logitscope lens [--model DIR|REPO] (--text T | --ids 1,2,3) [--pos I]\n"
    "                       [--top-k 5] [--json] [--threads N] [--hook ...]\n"
    "  for each layer, the top tokens of the residual stream at position I\n"
    "  (default -1, the last; negative counts from the end) read through ln_final\n"
    "  and the unembedding: layer 0 is the embeddings (blocks.0.hook_resid_pre),\n"
    "  layer i the output of block i - 1 (blocks.{i-1}.hook_resid_post)\n"
    CLI_HOOK_USAGE;

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

int cmd_lens(int argc, char **argv) {
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        CLI_HOOK_OPTIONS,
        {"pos", required_argument, 0, OPT_POS},
        {"top-k", required_argument, 0, OPT_TOPK},
        {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    cli_common c = {0};
    const char *pos_arg = NULL;
    long k = 5;
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = cli_common_option(&c, opt, optarg);
        if (r < 0) return 1;
        if (r > 0) continue;
        switch (opt) {
        case OPT_POS: pos_arg = optarg; break;
        case OPT_TOPK:
            if (!cli_parse_int(optarg, 1, 1000, &k))
                return cli_error("--top-k: '%s' is not a number from 1 to 1000", optarg);
            break;
        case OPT_HELP: fputs(usage, stdout); return 0;
        default:
            return cli_error("lens: unknown or incomplete option '%s' (see logitscope lens --help)",
                             argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_error("lens: unexpected argument '%s'", argv[optind]);

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
    long pos = (long)n - 1;
    if (pos_arg) {
        if (!cli_parse_int(pos_arg, -(long)n, (long)n - 1, &pos)) {
            cli_error("--pos: '%s' is not a position in [%ld, %zu) for %zu tokens", pos_arg,
                      -(long)n, n, n);
            goto done;
        }
        if (pos < 0) pos += (long)n;
    }
    lsc_ctx_params cp = lsc_ctx_default_params();
    cp.n_threads = c.threads;
    if (lsc_ctx_new(model, cp, &ctx, &err)) {
        cli_error("%s", err.message);
        goto done;
    }
    if (!cli_hooks_attach(&c, ctx, tok, &hooks)) goto done;
    size_t V = (size_t)lsc_model_n_vocab(model), L = (size_t)lsc_model_n_layer(model);
    if ((size_t)k > V) k = (long)V;
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
    if (c.json) {
        root = cJSON_CreateObject();
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
        lsc_top_k(row, V, (size_t)k, top, NULL);
        if (c.json) {
            cJSON *o = cJSON_CreateObject(), *arr;
            cJSON_AddNumberToObject(o, "layer", (double)l);
            cJSON_AddStringToObject(o, "stream", stream);
            arr = cJSON_AddArrayToObject(o, "top");
            for (long i = 0; i < k; i++) {
                cJSON *t = cJSON_CreateObject();
                char *s = NULL;
                size_t sl;
                cJSON_AddNumberToObject(t, "id", top[i]);
                if (lsc_tokenizer_decode(tok, &top[i], 1, &s, &sl, NULL) == LSC_OK)
                    cJSON_AddStringToObject(t, "token", s);
                lsc_free(s);
                cJSON_AddNumberToObject(t, "logit", row[top[i]]);
                cJSON_AddNumberToObject(t, "prob", prob[top[i]]);
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
    if (c.json) {
        char *s = cJSON_PrintUnformatted(root);
        if (!s) {
            cJSON_Delete(root);
            cli_error("out of memory");
            goto done;
        }
        puts(s);
        free(s);
        cJSON_Delete(root);
    }
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
