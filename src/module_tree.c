/* module_tree.c - the module tree exactly as PyTorch prints transformers'
 * GPT2LMHeadModel (print(model)), from the config: what `logitscope arch`
 * and the Python package's print(m) show. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A float as Python's repr prints it: the shortest text that reads back as
 * the same float32 ("0.1", "1e-05"), with ".0" added to integers ("0.0"). */
static void py_float(char *out, size_t cap, float v) {
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(out, cap, "%.*g", prec, (double)v);
        if (strtof(out, NULL) == v) break;
    }
    if (!strpbrk(out, ".eni")) strncat(out, ".0", cap - strlen(out) - 1);
}

/* The class PyTorch prints for transformers' ACT2FN[name]. */
static const char *activation_class(const char *name) {
    static const char *const map[][2] = {
        {"gelu_new", "NewGELUActivation"}, {"gelu_pytorch_tanh", "GELUTanh"},
        {"gelu_python_tanh", "GELUTanh"},  {"gelu", "GELUActivation"},
        {"gelu_python", "GELUActivation"}, {"gelu_fast", "FastGELUActivation"},
        {"quick_gelu", "QuickGELUActivation"}, {"relu", "ReLU"},
        {"relu6", "ReLU6"},                {"silu", "SiLUActivation"},
        {"swish", "SiLU"},                 {"sigmoid", "Sigmoid"},
        {"tanh", "Tanh"},                  {"linear", "LinearActivation"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i][0], name)) return map[i][1];
    return name;
}

size_t lsc_model_module_tree(const lsc_model *model, char *buf, size_t size) {
    const lsc_config *c = lsc_model_config(model);
    char eps[32], pe[32], pa[32], pr[32], ln[96], idx[32];
    py_float(eps, sizeof eps, c->layer_norm_epsilon);
    py_float(pe, sizeof pe, c->embd_pdrop);
    py_float(pa, sizeof pa, c->attn_pdrop);
    py_float(pr, sizeof pr, c->resid_pdrop);
    snprintf(ln, sizeof ln, "LayerNorm((%d,), eps=%s, elementwise_affine=True, bias=True)",
             c->n_embd, eps);
    int E = c->n_embd, M = c->n_inner, L = c->n_layer;
    if (L == 1) snprintf(idx, sizeof idx, "(0): ");
    else snprintf(idx, sizeof idx, "(0-%d): %d x ", L - 1, L);
    int n = snprintf(buf, size,
                     "GPT2LMHeadModel(\n"
                     "  (transformer): GPT2Model(\n"
                     "    (wte): Embedding(%d, %d)\n"
                     "    (wpe): Embedding(%d, %d)\n"
                     "    (drop): Dropout(p=%s, inplace=False)\n"
                     "    (h): ModuleList(\n"
                     "      %sGPT2Block(\n"
                     "        (ln_1): %s\n"
                     "        (attn): GPT2Attention(\n"
                     "          (c_attn): Conv1D(nf=%d, nx=%d)\n"
                     "          (c_proj): Conv1D(nf=%d, nx=%d)\n"
                     "          (attn_dropout): Dropout(p=%s, inplace=False)\n"
                     "          (resid_dropout): Dropout(p=%s, inplace=False)\n"
                     "        )\n"
                     "        (ln_2): %s\n"
                     "        (mlp): GPT2MLP(\n"
                     "          (c_fc): Conv1D(nf=%d, nx=%d)\n"
                     "          (c_proj): Conv1D(nf=%d, nx=%d)\n"
                     "          (act): %s()\n"
                     "          (dropout): Dropout(p=%s, inplace=False)\n"
                     "        )\n"
                     "      )\n"
                     "    )\n"
                     "    (ln_f): %s\n"
                     "  )\n"
                     "  (lm_head): Linear(in_features=%d, out_features=%d, bias=False)\n"
                     ")\n",
                     c->n_vocab, E, c->n_ctx, E, pe, idx, ln, 3 * E, E, E, E, pa, pr, ln, M, E,
                     E, M, activation_class(c->activation_function), pr, ln, E, c->n_vocab);
    return n < 0 ? 0 : (size_t)n; /* snprintf cannot fail on these formats */
}
