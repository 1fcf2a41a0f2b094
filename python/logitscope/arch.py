"""The module tree of GPT2LMHeadModel exactly as PyTorch prints it (print(m)),
from the config: the same text as `logitscope arch` (tools/arch.c)."""
import numpy as np

from ._lsc import ffi

# the class PyTorch prints for transformers' ACT2FN[name]
_ACTIVATIONS = {
    "gelu_new": "NewGELUActivation", "gelu_pytorch_tanh": "GELUTanh",
    "gelu_python_tanh": "GELUTanh", "gelu": "GELUActivation", "gelu_python": "GELUActivation",
    "gelu_fast": "FastGELUActivation", "quick_gelu": "QuickGELUActivation", "relu": "ReLU",
    "relu6": "ReLU6", "silu": "SiLUActivation", "swish": "SiLU", "sigmoid": "Sigmoid",
    "tanh": "Tanh", "linear": "LinearActivation",
}


def _py_float(v: float) -> str:
    """A float32 as Python's repr prints the config's value ("0.1", "1e-05")."""
    return str(np.float32(v))


def module_tree(c) -> str:
    """print(GPT2LMHeadModel(config)) for an lsc_config."""
    E, M, L, V = c.n_embd, c.n_inner, c.n_layer, c.n_vocab
    act = ffi.string(c.activation_function).decode()
    ln = (f"LayerNorm(({E},), eps={_py_float(c.layer_norm_epsilon)}, elementwise_affine=True, "
          "bias=True)")
    idx = "(0): " if L == 1 else f"(0-{L - 1}): {L} x "
    pe, pa, pr = (_py_float(x) for x in (c.embd_pdrop, c.attn_pdrop, c.resid_pdrop))
    return (
        "GPT2LMHeadModel(\n"
        "  (transformer): GPT2Model(\n"
        f"    (wte): Embedding({V}, {E})\n"
        f"    (wpe): Embedding({c.n_ctx}, {E})\n"
        f"    (drop): Dropout(p={pe}, inplace=False)\n"
        "    (h): ModuleList(\n"
        f"      {idx}GPT2Block(\n"
        f"        (ln_1): {ln}\n"
        "        (attn): GPT2Attention(\n"
        f"          (c_attn): Conv1D(nf={3 * E}, nx={E})\n"
        f"          (c_proj): Conv1D(nf={E}, nx={E})\n"
        f"          (attn_dropout): Dropout(p={pa}, inplace=False)\n"
        f"          (resid_dropout): Dropout(p={pr}, inplace=False)\n"
        "        )\n"
        f"        (ln_2): {ln}\n"
        "        (mlp): GPT2MLP(\n"
        f"          (c_fc): Conv1D(nf={M}, nx={E})\n"
        f"          (c_proj): Conv1D(nf={E}, nx={M})\n"
        f"          (act): {_ACTIVATIONS.get(act, act)}()\n"
        f"          (dropout): Dropout(p={pr}, inplace=False)\n"
        "        )\n"
        "      )\n"
        "    )\n"
        f"    (ln_f): {ln}\n"
        "  )\n"
        f"  (lm_head): Linear(in_features={E}, out_features={V}, bias=False)\n"
        ")"
    )
