"""`generate` with no length or sampling flags against transformers'
model.generate(input_ids) (greedy, transformers 5's default length), with
and without a generation_config.json in a copy of a fixture folder; flags
overriding the file; and bad generation_config.json files."""
import json
import shutil

import numpy as np
import pytest

from conftest import require_oracle, run_cli
from fixtures import fixture_dir

NAME = "tiny"  # n_positions 64


def prompt(n, seed):
    return np.random.default_rng(seed).integers(0, 50256, n).tolist()


def ids_arg(ids):
    return ",".join(map(str, ids))


def model_copy(tmp_path, gen_config):
    """A copy of the fixture folder with `gen_config` (a dict, or raw text) as
    its generation_config.json (none when None)."""
    d = tmp_path / "model"
    shutil.copytree(fixture_dir(NAME), d)
    if gen_config is not None:
        text = gen_config if isinstance(gen_config, str) else json.dumps(gen_config)
        (d / "generation_config.json").write_text(text)
    return d


def ours(model_dir, ids, *flags):
    p = run_cli("generate", "--model", model_dir, "--ids", ids_arg(ids), "--json", *flags)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def oracle(model_dir, ids):
    """model.generate(input_ids) with nothing else given: new ids, or the
    ValueError's message."""
    import torch
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        try:
            out = m.generate(torch.tensor([ids]))
        except ValueError as e:
            return str(e)
    return out[0, len(ids):].tolist()


CASES = [  # generation_config.json (None: absent), prompt length
    (None, 14),   # 20 new tokens (transformers 5: max_length 20 + the prompt)
    (None, 50),   # 20 + 50 capped at n_positions 64: 14 new tokens
    ({"max_new_tokens": 7, "repetition_penalty": 1.3}, 14),
    ({"max_length": 17, "bos_token_id": 50256, "eos_token_id": 50256}, 14),  # 3 new
    ({"max_length": 30, "max_new_tokens": 5}, 3),  # max_new_tokens wins
    ({"do_sample": False, "temperature": 0.5, "top_k": 3, "eos_token_id": None}, 5),
]


@pytest.mark.parametrize("gen_config,n_prompt", CASES)
def test_default_generate_matches_transformers(tmp_path, gen_config, n_prompt):
    require_oracle()
    d = model_copy(tmp_path, gen_config)
    ids = prompt(n_prompt, seed=n_prompt)
    want = oracle(d, ids)
    got = ours(d, ids)
    print(f"{gen_config} prompt {n_prompt}: {len(got['new_ids'])} new tokens "
          f"(transformers {len(want)}), equal: {got['new_ids'] == want}")
    assert got["generation_config"] == (gen_config is not None)
    assert got["do_sample"] is False
    assert got["new_ids"] == want


def test_eos_from_file_matches_transformers(tmp_path):
    """eos_token_id from the file: both stop right after that token."""
    require_oracle()
    ids = prompt(6, seed=6)
    plain = ours(fixture_dir(NAME), ids, "--repetition-penalty", "1.3", "--max-new-tokens", 12)
    plain = plain["new_ids"]
    # the first token not seen before, after step 0: the stop must come there
    k = next((i for i in range(1, len(plain)) if plain[i] not in plain[:i]), None)
    assert k is not None, plain
    d = model_copy(tmp_path, {"eos_token_id": [plain[k]], "max_new_tokens": 12,
                              "repetition_penalty": 1.3})
    want = oracle(d, ids)
    got = ours(d, ids)
    assert got["new_ids"] == want == plain[:k + 1], (got["new_ids"], want, plain)
    assert got["stop"] == "eos"
    assert ours(d, ids, "--no-stop")["new_ids"] == plain[:12]


def test_prompt_at_max_length_fails_like_transformers(tmp_path):
    require_oracle()
    d = model_copy(tmp_path, {"max_length": 10})
    ids = prompt(10, seed=10)
    want = oracle(d, ids)
    assert isinstance(want, str) and "max_length" in want, want
    p = run_cli("generate", "--model", d, "--ids", ids_arg(ids))
    assert p.returncode != 0 and p.stdout == ""
    assert "max_length is 10" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    # --max-new-tokens overrides the file
    assert len(ours(d, ids, "--max-new-tokens", 4)["new_ids"]) == 4


def test_sampling_from_file_equals_flags(tmp_path):
    """do_sample/temperature/top_k from the file sample as the same flags do,
    and --greedy / flags override the file."""
    ids = prompt(5, seed=5)
    d = model_copy(tmp_path, {"do_sample": True, "temperature": 0.7, "top_k": 5, "top_p": 0.9,
                              "max_new_tokens": 9})
    flags = ["--temperature", "0.7", "--top-k", "5", "--top-p", "0.9", "--max-new-tokens", "9"]
    for seed in ("1", "2"):
        a = ours(d, ids, "--seed", seed)
        b = ours(fixture_dir(NAME), ids, "--seed", seed, *flags)
        assert a["do_sample"] and a["new_ids"] == b["new_ids"]
    greedy = ours(d, ids, "--greedy")
    assert not greedy["do_sample"]
    assert greedy["new_ids"] == ours(fixture_dir(NAME), ids, "--max-new-tokens", "9")["new_ids"]
    assert ours(d, ids, "--top-k", "1")["new_ids"] == greedy["new_ids"]
    assert len(ours(d, ids, "--max-new-tokens", "2")["new_ids"]) == 2


BAD = [  # file text, what the one-line error must name
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"do_sample": "yes"}', '"do_sample" must be true or false'),
    ('{"temperature": "hot"}', '"temperature" must be a number'),
    ('{"temperature": -1}', '"temperature" = -1 is outside'),
    ('{"top_k": 2.5}', '"top_k" must be an integer'),
    ('{"top_p": 0}', '"top_p" = 0 is outside'),
    ('{"min_p": 1.5}', '"min_p" = 1.5 is outside'),
    ('{"repetition_penalty": 0}', '"repetition_penalty" = 0 is outside'),
    ('{"max_new_tokens": "7"}', '"max_new_tokens" must be an integer'),
    ('{"max_new_tokens": 0}', '"max_new_tokens" = 0 is outside'),
    ('{"max_length": true}', '"max_length" must be an integer'),
    ('{"eos_token_id": "50256"}', '"eos_token_id" must be a token id'),
    ('{"eos_token_id": [50256, 1]}', '"eos_token_id" lists 2 ids'),
]


@pytest.mark.parametrize("text,msg", BAD)
def test_bad_generation_config(tmp_path, text, msg):
    d = model_copy(tmp_path, text)
    p = run_cli("generate", "--model", d, "--ids", "1,2,3")
    assert p.returncode != 0 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "generation_config.json" in lines[0] and msg in lines[0], p.stderr


def min_p_violations(ids, new_ids, temperature, min_p):
    """How many drawn tokens had p / p_max < min_p under transformers'
    logits of their position, divided by the temperature."""
    from test_oracle_logits import oracle_logits
    logits = oracle_logits(NAME, ids + new_ids).astype(np.float64)
    bad = 0
    for i, tok in enumerate(new_ids):
        row = logits[len(ids) - 1 + i] / temperature
        bad += np.exp(row[tok] - row.max()) < min_p
    return int(bad)


def test_min_p_from_flag_and_file_reaches_the_sampler(tmp_path):
    """--min-p and generation_config.json's min_p filter the draws: at
    temperature 3 every token drawn with min_p 0.3 has p >= 0.3 p_max under
    transformers' logits, while the same seeds without min_p draw some that
    do not (so the check can fail); min_p 1 leaves only the argmax (greedy)."""
    require_oracle()
    ids = prompt(5, seed=5)
    base = ["--do-sample", "--temperature", "3", "--top-k", "0", "--max-new-tokens", "30", "--no-stop"]
    d = model_copy(tmp_path, {"do_sample": True, "temperature": 3, "top_k": 0, "min_p": 0.3,
                              "max_new_tokens": 30})
    plain = flag = from_file = 0
    for seed in ("1", "2", "3"):
        plain += min_p_violations(ids, ours(fixture_dir(NAME), ids, "--seed", seed, *base)["new_ids"], 3, 0.3)
        flag += min_p_violations(ids, ours(fixture_dir(NAME), ids, "--seed", seed, *base,
                                           "--min-p", "0.3")["new_ids"], 3, 0.3)
        from_file += min_p_violations(ids, ours(d, ids, "--seed", seed, "--no-stop")["new_ids"], 3, 0.3)
    print(f"tokens with p < 0.3 p_max in 90 draws at temperature 3: without min_p {plain}, "
          f"--min-p 0.3 {flag}, min_p 0.3 in the file {from_file}")
    assert plain > 0
    assert flag == 0 and from_file == 0
    greedy = ours(fixture_dir(NAME), ids, "--max-new-tokens", "30", "--no-stop")["new_ids"]
    assert ours(fixture_dir(NAME), ids, "--seed", "1", *base, "--min-p", "1")["new_ids"] == greedy
