"""The Python package against transformers in the same process, on the
generated fixtures: logits at every position, greedy generate, the loss,
hooks (lm_head set, an MLP zeroed, a steering vector) against PyTorch
forward hooks, and run_with_cache against hidden states and attentions.
Max |diff| printed; tolerance 1e-4."""
import functools

import numpy as np
import pytest

import pkg_path  # noqa: F401  (before logitscope)
import logitscope
from conftest import require_oracle
from fixtures import fixture_dir

TOL = 1e-4
TEXT = "The quick brown fox jumps over the lazy dog, and then the dog"


@pytest.fixture(autouse=True)
def _oracle():
    require_oracle()


@functools.lru_cache(maxsize=None)
def hf(name):
    import torch
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(str(fixture_dir(name)), dtype=torch.float32,
                                                attn_implementation="eager").eval()


@functools.lru_cache(maxsize=None)
def lsc(name):
    return logitscope.load(fixture_dir(name))


def hf_logits(name, ids, hooks=()):
    """transformers' logits [T, V] with forward hooks (module, fn(module, args, out))."""
    import torch
    model = hf(name)
    handles = [mod(model, path).register_forward_hook(fn) for path, fn in hooks]
    try:
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0].numpy()
    finally:
        for h in handles:
            h.remove()


def mod(model, path):
    o = model
    for part in path.split("."):
        o = o[int(part)] if part.isdigit() else getattr(o, part)
    return o


def report(what, got, want):
    d = float(np.max(np.abs(got - want)))
    print(f"{what}: max |diff| {d:.3g}")
    assert d <= TOL, f"{what}: max |diff| {d} > {TOL}"


@pytest.mark.parametrize("name", ["tiny", "tiny-f16", "tiny-bf16", "tiny-untied",
                                  "tiny-scale-inv", "tiny-gelu", "tiny-prefix", "gpt2-124m"])
def test_logits_every_position(name):
    m = lsc(name)
    ids = m.tokenizer.encode(TEXT)
    report(f"{name} logits [{len(ids)}, V]", m.logits(ids), hf_logits(name, ids))
    if name == "tiny":  # the whole context, grown token by token through the cache
        long_ids = list(np.random.default_rng(0).integers(0, m.n_vocab, m.n_ctx))
        m.reset()
        for n in range(1, m.n_ctx + 1):
            got = m.logits(long_ids[:n])
        report("tiny logits grown to 64 tokens", got, hf_logits(name, long_ids))


@pytest.mark.parametrize("name", ["tiny", "gpt2-124m"])
def test_greedy_generate_equals_transformers(name):
    import torch
    m = lsc(name)
    ids = m.tokenizer.encode("Once upon a time there was")
    want = hf(name).generate(torch.tensor([ids]), do_sample=False, max_new_tokens=16,
                             pad_token_id=50256)[0].tolist()
    got = m.generate(ids, max_new_tokens=16)
    assert got.ids == want
    assert [t.id for t in m.generate(ids, max_new_tokens=16, stream=True)] == want[len(ids):]


@pytest.mark.parametrize("name", ["tiny", "gpt2-124m"])
def test_score_equals_the_loss(name):
    import torch
    m = lsc(name)
    ids = m.tokenizer.encode(TEXT)
    with torch.no_grad():
        out = hf(name)(torch.tensor([ids]), labels=torch.tensor([ids]))
    s = m.score(ids)
    print(f"{name} loss {out.loss.item():.6f} vs nll {s.nll:.6f}")
    assert s.nll == pytest.approx(out.loss.item(), abs=1e-4)
    lp = torch.log_softmax(out.logits[0, :-1], -1).gather(1, torch.tensor(ids[1:])[:, None])
    report(f"{name} token_logprobs", s.token_logprobs, lp[:, 0].numpy())
    many = m.score_many([TEXT, "Hello there", TEXT[:30]], batch_size=2)
    assert many[0] == s


def test_lm_head_hook_sets_coffee_to_max_plus_10():
    m = lsc("tiny")
    ids = m.tokenizer.encode(TEXT)
    coffee = m.tokenizer.encode(" coffee")[0]

    def boost(act, name):
        act[:, coffee] = act.max(axis=1) + 10

    def torch_boost(module, args, out):
        out = out.clone()
        out[..., coffee] = out.max(dim=-1).values + 10
        return out

    with m.hooks({"lm_head": boost}):
        got = m.logits(ids)
        gen = m.generate(ids, max_new_tokens=3)
    want = hf_logits("tiny", ids, [("lm_head", torch_boost)])
    report("lm_head coffee max+10", got, want)
    assert (got.argmax(-1) == coffee).all() and gen.new_ids == [coffee] * 3
    assert m.logits(ids).argmax(-1)[-1] != coffee  # removed on exit


def test_zeroed_mlp_and_steering_vector_match_pytorch_hooks():
    m = lsc("gpt2-124m")
    ids = m.tokenizer.encode(TEXT)
    vec = np.random.default_rng(1).standard_normal(m.config["n_embd"]).astype(np.float32)

    def zero(act, name):
        return np.zeros_like(act)

    def steer(act, name):
        act += 4 * vec

    def torch_zero(module, args, out):
        return out * 0

    def torch_steer(module, args, out):
        import torch
        return (out[0] + 4 * torch.from_numpy(vec),) + tuple(out[1:]) \
            if isinstance(out, tuple) else out + 4 * torch.from_numpy(vec)

    with m.hooks({"blocks.3.hook_mlp_out": zero, "blocks.5.hook_resid_post": steer}):
        got = m.logits(ids)
    want = hf_logits("gpt2-124m", ids, [("transformer.h.3.mlp", torch_zero),
                                        ("transformer.h.5", torch_steer)])
    report("gpt2-124m zero mlp 3 + steer resid 5", got, want)
    assert np.max(np.abs(got - m.logits(ids))) > 1  # the hooks changed something


def test_run_with_cache_equals_hidden_states_and_attentions():
    import torch
    m = lsc("gpt2-124m")
    ids = m.tokenizer.encode(TEXT)
    logits, cache = m.run_with_cache(ids)
    L = m.config["n_layer"]
    assert len(cache) == len(m.hook_points)
    with torch.no_grad():
        out = hf("gpt2-124m")(torch.tensor([ids]), output_hidden_states=True,
                              output_attentions=True)
    hs = [h[0].numpy() for h in out.hidden_states]
    report("logits", logits, out.logits[0].numpy())
    report("hidden_states[0] = blocks.0.hook_resid_pre", cache["blocks.0.hook_resid_pre"], hs[0])
    for i in range(L - 1):
        report(f"hidden_states[{i + 1}] = blocks.{i}.hook_resid_post",
               cache[f"blocks.{i}.hook_resid_post"], hs[i + 1])
    report(f"hidden_states[{L}] = ln_final.hook_normalized", cache["ln_final.hook_normalized"],
           hs[L])
    for i in (0, L - 1):
        report(f"attentions[{i}] = blocks.{i}.attn.hook_pattern",
               cache[f"blocks.{i}.attn.hook_pattern"], out.attentions[i][0].numpy())
    only = m.run_with_cache(ids, names="blocks.*.hook_mlp_out")[1]
    assert list(only) == [f"blocks.{i}.hook_mlp_out" for i in range(L)]
    assert only["blocks.0.hook_mlp_out"].shape == (len(ids), m.config["n_embd"])


@pytest.mark.parametrize("name", ["tiny", "tiny-gelu", "gpt2-124m"])
def test_print_model_is_pytorchs_module_tree(name):
    assert repr(lsc(name)) == str(hf(name))
