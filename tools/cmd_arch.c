/* cmd_arch.c - `logitscope arch --model M`: the module tree exactly as PyTorch
 * prints transformers' GPT2LMHeadModel (lsc_model_module_tree), then the parameter
 * counts, the weights file (dtype, size) and the hook point names with their shapes. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>


static int run(int argc, char **argv);

const cli_command cli_cmd_arch = {
    .name = "arch",
    .summary = "the module tree as PyTorch prints it, parameter counts, file, hook points",
    .synopsis = "[options]",
    .about = "Prints the module tree as PyTorch prints transformers' GPT2LMHeadModel, the\n"
             "parameter counts, the weights file's dtype and size, and the hook point names\n"
             "with their shapes (T = new tokens, P = cached + new).\n",
    .groups = CLI_MODEL | CLI_OUTPUT,
    .json = "  {\"model\", \"class\", \"tree\", \"parameters\", \"file\",\n"
            "   \"hook_points\": [{\"name\", \"shape\"}]}\n",
    .run = run,
};

/* Parameter counts of GPT2LMHeadModel, as sum(p.numel() for p in
 * model.parameters()): a tied lm_head is the same tensor as wte. */
typedef struct param_counts {
    uint64_t wte, wpe, block, ln_f, lm_head, total;
} param_counts;

static param_counts count_params(const lsc_config *c) {
    uint64_t E = (uint64_t)c->n_embd, M = (uint64_t)c->n_inner, V = (uint64_t)c->n_vocab;
    param_counts p;
    p.wte = V * E;
    p.wpe = (uint64_t)c->n_ctx * E;
    p.block = 2 * E                 /* ln_1 */
              + E * 3 * E + 3 * E   /* c_attn */
              + E * E + E           /* attn c_proj */
              + 2 * E               /* ln_2 */
              + E * M + M           /* c_fc */
              + M * E + E;          /* mlp c_proj */
    p.ln_f = 2 * E;
    p.lm_head = c->tie_word_embeddings ? 0 : V * E;
    p.total = p.wte + p.wpe + (uint64_t)c->n_layer * p.block + p.ln_f + p.lm_head;
    return p;
}

/* "1,625,344" */
static const char *commas(char *out, size_t cap, uint64_t v) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t k = 0;
    for (int i = 0; i < n && k + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0) out[k++] = ',';
        out[k++] = digits[i];
    }
    out[k] = '\0';
    return out;
}

/* A hook point's shape with the dimensions that grow with the tokens written
 * as T (new tokens) or P (cached + new; equal to T at n_past = 0, told apart
 * by position: the last dim of the attention scores/pattern). */
static void symbolic_shape(const lsc_model *m, int i, char *out, size_t cap, cJSON *json) {
    int64_t a[4], b[4];
    int nd = lsc_model_hook_point_shape(m, i, 3, a);
    lsc_model_hook_point_shape(m, i, 5, b);
    const char *name = lsc_model_hook_point_name(m, i);
    bool scores = strstr(name, "hook_attn_scores") || strstr(name, "hook_pattern");
    size_t k = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < nd && k < cap; d++) {
        char dim[24];
        if (a[d] != b[d]) snprintf(dim, sizeof dim, "%s", scores && d == nd - 1 ? "P" : "T");
        else snprintf(dim, sizeof dim, "%lld", (long long)a[d]);
        k += (size_t)snprintf(out + k, cap - k, "%s%s", d ? ", " : "", dim);
        if (json)
            cJSON_AddItemToArray(json, a[d] != b[d] ? cJSON_CreateString(dim)
                                                    : cJSON_CreateNumber((double)a[d]));
    }
    if (k < cap) snprintf(out + k, cap - k, "]");
}

/* The --json form: tree, counts, file and hook points in one object. */
static int print_json(const lsc_model *m, const char *dir, const char *tree) {
    const lsc_config *c = lsc_model_config(m);
    param_counts p = count_params(c);
    lsc_model_file f;
    lsc_model_file_info(m, &f);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", dir);
    cJSON_AddStringToObject(o, "class", "GPT2LMHeadModel");
    cJSON_AddStringToObject(o, "tree", tree);
    cJSON *pc = cJSON_AddObjectToObject(o, "parameters");
    cJSON_AddNumberToObject(pc, "total", (double)p.total);
    cJSON_AddNumberToObject(pc, "wte", (double)p.wte);
    cJSON_AddNumberToObject(pc, "wpe", (double)p.wpe);
    cJSON_AddNumberToObject(pc, "per_block", (double)p.block);
    cJSON_AddNumberToObject(pc, "n_blocks", c->n_layer);
    cJSON_AddNumberToObject(pc, "ln_f", (double)p.ln_f);
    cJSON_AddNumberToObject(pc, "lm_head", (double)p.lm_head);
    cJSON_AddBoolToObject(pc, "tied", c->tie_word_embeddings);
    cJSON *fo = cJSON_AddObjectToObject(o, "file");
    cJSON_AddStringToObject(fo, "path", f.path);
    cJSON_AddNumberToObject(fo, "bytes", (double)f.n_bytes);
    cJSON_AddStringToObject(fo, "dtype", f.dtype);
    cJSON_AddBoolToObject(fo, "transformer_prefix", f.prefixed);
    cJSON_AddNumberToObject(fo, "n_tensors", f.n_tensors);
    cJSON *hp = cJSON_AddArrayToObject(o, "hook_points");
    for (int i = 0; i < lsc_model_n_hook_points(m); i++) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "name", lsc_model_hook_point_name(m, i));
        char buf[96];
        symbolic_shape(m, i, buf, sizeof buf, cJSON_AddArrayToObject(h, "shape"));
        cJSON_AddItemToArray(hp, h);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) return cli_error("out of memory");
    puts(text);
    free(text);
    return 0;
}

/* The text form: the tree, then counts, file and hook points. */
static void print_text(const lsc_model *m, const char *tree) {
    const lsc_config *c = lsc_model_config(m);
    param_counts p = count_params(c);
    lsc_model_file f;
    lsc_model_file_info(m, &f);
    char a[32], b[32], sa[48];
    fputs(tree, stdout);
    printf("\nparameters: %s\n", commas(a, sizeof a, p.total));
    printf("  %-28s %15s   [%d, %d]\n", "transformer.wte", commas(a, sizeof a, p.wte),
           c->n_vocab, c->n_embd);
    printf("  %-28s %15s   [%d, %d]\n", "transformer.wpe", commas(a, sizeof a, p.wpe), c->n_ctx,
           c->n_embd);
    snprintf(sa, sizeof sa, "transformer.h (%d blocks)", c->n_layer);
    printf("  %-28s %15s   %d x %s per block\n", sa,
           commas(a, sizeof a, (uint64_t)c->n_layer * p.block), c->n_layer,
           commas(b, sizeof b, p.block));
    printf("  %-28s %15s   [%d] x 2\n", "transformer.ln_f", commas(a, sizeof a, p.ln_f), c->n_embd);
    if (c->tie_word_embeddings)
        printf("  %-28s %15s   tied to transformer.wte (counted once)\n", "lm_head", "0");
    else
        printf("  %-28s %15s   [%d, %d]\n", "lm_head", commas(a, sizeof a, p.lm_head), c->n_vocab,
               c->n_embd);
    printf("\nweights: %s\n  %s, %s bytes (%.1f MB), %d tensors, names %s \"transformer.\"\n",
           f.path, f.dtype, commas(a, sizeof a, f.n_bytes), (double)f.n_bytes / 1e6, f.n_tensors,
           f.prefixed ? "with" : "without");
    int n = lsc_model_n_hook_points(m);
    printf("\nhook points: %d (blocks.{i} for i = 0..%d; T = new tokens, P = cached + new)\n", n,
           c->n_layer - 1);
    for (int i = 0; i < n; i++) { /* block 0 stands for every block */
        const char *name = lsc_model_hook_point_name(m, i);
        char shown[128], shape[96];
        if (!strncmp(name, "blocks.", 7) && strncmp(name, "blocks.0.", 9)) continue;
        if (!strncmp(name, "blocks.0.", 9)) snprintf(shown, sizeof shown, "blocks.{i}.%s", name + 9);
        else snprintf(shown, sizeof shown, "%s", name);
        symbolic_shape(m, i, shape, sizeof shape, NULL);
        printf("  %-36s %s\n", shown, shape);
    }
}

static int run(int argc, char **argv) {
    cli_args a;
    cli_args_begin(&a, &cli_cmd_arch, argc, argv);
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;
    lsc_model *m = cli_load_model(&c);
    if (!m) return 1;
    size_t n = lsc_model_module_tree(m, NULL, 0);
    char *tree = malloc(n + 1);
    if (tree) lsc_model_module_tree(m, tree, n + 1);
    int rc = 0;
    if (!tree) rc = cli_error("out of memory");
    else if (c.json) rc = print_json(m, cli_model_dir(&c), tree);
    else print_text(m, tree);
    free(tree);
    lsc_model_free(m);
    return rc;
}
