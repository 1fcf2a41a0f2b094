"""Tokenizer oracle tests: logitscope's ids and texts against transformers'
GPT2Tokenizer (the notebook's tokenizer; in transformers 5 it runs the Rust
`tokenizers` library) and against tiktoken's GPT-2 encoding built offline from
the same vocab.json/merges.txt. Every batch goes through one `--jsonl` process.
"""
import json
import os
import pathlib
import random
import subprocess
import sys

import pytest

from conftest import BIN, ROOT, require_oracle

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from tokenizer_corpus import corpus_items  # noqa: E402

DATA = ROOT / "tests" / "data"
GPT2_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    """GPT-2's byte -> printable character table (encoder.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


@pytest.fixture(scope="module")
def hf():
    require_oracle()
    from transformers import GPT2Tokenizer
    return GPT2Tokenizer.from_pretrained(str(DATA))


@pytest.fixture(scope="module")
def token_bytes():
    """id -> raw bytes of the token, from vocab.json."""
    u2b = {c: b for b, c in bytes_to_unicode().items()}
    vocab = json.loads((DATA / "vocab.json").read_text(encoding="utf-8"))
    return {i: bytes(u2b[c] for c in tok) for tok, i in vocab.items()}


@pytest.fixture(scope="module")
def tiktoken_enc(token_bytes):
    """tiktoken's GPT-2 encoding, or None when tiktoken is absent (a failure
    under LSC_REQUIRE_ORACLE=1): the GPT2Tokenizer comparisons run without
    it, and the tiktoken ones skip, saying so."""
    try:
        import tiktoken
    except ImportError as e:
        if os.environ.get("LSC_REQUIRE_ORACLE") == "1":
            pytest.fail(f"tiktoken required but not importable: {e}")
        return None
    ranks = {b: i for i, b in token_bytes.items() if i != 50256}
    return tiktoken.Encoding("gpt2-offline", pat_str=GPT2_PAT, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def hf_pieces(hf, text):
    """The pieces GPT2Tokenizer's pipeline gives: "<|endoftext|>" split out
    first (an added special token), then the ByteLevel pre-tokenizer."""
    u2b = {c: b for b, c in bytes_to_unicode().items()}
    pre = hf.backend_tokenizer.pre_tokenizer
    out = []
    for i, seg in enumerate(text.split("<|endoftext|>")):
        if i:
            out.append("<|endoftext|>")
        out += [bytes(u2b[ch] for ch in p).decode() for p, _ in pre.pre_tokenize_str(seg)]
    return out


def run_jsonl(command, records, *flags):
    """Runs `logitscope COMMAND --jsonl` on the records; returns parsed lines."""
    inp = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    p = subprocess.run([str(BIN), command, "--model", str(DATA), "--jsonl", *flags], input=inp,
                       capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    out = [json.loads(line) for line in p.stdout.split(b"\n")[:-1]]  # not splitlines(): U+2028
    assert len(out) == len(records)
    return out


def report(name, texts, ours, theirs, cats=None):
    """Prints and returns the number of mismatches (with the first few)."""
    bad = [i for i in range(len(texts)) if ours[i] != theirs[i]]
    print(f"{name}: {len(texts)} strings, {len(bad)} mismatches")
    for i in bad[:5]:
        print(f"  [{cats[i] if cats else i}] {texts[i][:80]!r}\n    ours   {ours[i][:20]}\n    theirs {theirs[i][:20]}")
    return len(bad)


def test_corpus_matches_gpt2tokenizer_and_tiktoken(hf, tiktoken_enc):
    items = corpus_items(12000)
    cats = [c for c, _ in items]
    texts = [s for _, s in items]
    assert len(texts) >= 10000 and len(set(cats)) >= 20
    out = run_jsonl("tokenize", [{"text": s} for s in texts], "--pieces")
    ours = [r["ids"] for r in out]
    want_hf = hf(texts)["input_ids"]
    n_hf = report("vs transformers GPT2Tokenizer", texts, ours, want_hf, cats)
    n_tt = 0
    if tiktoken_enc is not None:
        want_tt = tiktoken_enc.encode_batch(texts, allowed_special="all", num_threads=1)
        n_tt = report("vs tiktoken gpt2 (offline)", texts, ours, want_tt, cats)
    n_pc = report("pieces vs GPT2Tokenizer's pre-tokenizer", texts, [r["pieces"] for r in out],
                  [hf_pieces(hf, s) for s in texts], cats)
    print(f"corpus: {len(texts)} strings, {sum(len(s) for s in texts)} characters, "
          f"{sum(map(len, ours))} tokens, {len(set(cats))} categories")
    assert n_hf == 0 and n_tt == 0 and n_pc == 0

    # --no-special: "<|endoftext|>" is plain text
    special = [s for s in texts if "<|endoftext|>" in s]
    assert len(special) > 100
    ours = [r["ids"] for r in run_jsonl("tokenize", [{"text": s} for s in special], "--no-special")]
    n_hf = report("--no-special vs GPT2Tokenizer(split_special_tokens=True)", special, ours,
                  hf(special, split_special_tokens=True)["input_ids"])
    if tiktoken_enc is not None:
        n_tt = report("--no-special vs tiktoken encode_ordinary", special, ours,
                      tiktoken_enc.encode_ordinary_batch(special, num_threads=1))
    assert n_hf == 0 and n_tt == 0
    if tiktoken_enc is None:
        pytest.skip("tiktoken not installed: compared with GPT2Tokenizer only (which passed)")


def test_roundtrip_decode_encode():
    texts = [s for _, s in corpus_items(12000)]
    ids = [r["ids"] for r in run_jsonl("tokenize", [{"text": s} for s in texts])]
    back = [r["text"] for r in run_jsonl("detokenize", [{"ids": i} for i in ids])]
    bad = [i for i in range(len(texts)) if back[i] != texts[i]]
    print(f"roundtrip: {len(texts)} strings, {len(bad)} differ")
    assert not bad, [texts[i][:60] for i in bad[:3]]


def test_decode_matches_python_replace(hf, token_bytes):
    """Id sequences that cut multi-byte characters: the text must equal
    b"".join(bytes).decode("utf-8", errors="replace") and transformers' decode."""
    r = random.Random(7)
    texts = [s for c, s in corpus_items(3000, seed=99) if any(ord(ch) > 127 for ch in s)]
    encoded = hf(texts)["input_ids"]
    seqs = []
    for ids in encoded:
        for _ in range(3):
            a = r.randrange(len(ids))
            b = r.randrange(a, len(ids)) + 1
            seqs.append(ids[a:b])
    byte_ids = [i for i, b in token_bytes.items() if len(b) == 1]
    high = [i for i, b in token_bytes.items() if any(x >= 0x80 for x in b)]
    for _ in range(3000):  # random sequences of partial characters and bytes
        seqs.append([r.choice(high if r.random() < 0.7 else byte_ids) for _ in range(r.randint(1, 12))])
    seqs += [[50256, 447], [447, 50256, 246], [30325, 222], [188], []]
    ours = [o["text"] for o in run_jsonl("detokenize", [{"ids": s} for s in seqs])]
    want_py = [b"".join(token_bytes[i] for i in s).decode("utf-8", errors="replace") for s in seqs]
    want_hf = [hf.decode(s) for s in seqs]
    n_py = report("decode vs bytes.decode(errors='replace')", seqs, ours, want_py)
    n_hf = report("decode vs GPT2Tokenizer.decode", seqs, ours, want_hf)
    assert sum("\ufffd" in t for t in want_py) > 1000  # the cases are really there
    assert n_py == 0 and n_hf == 0


def code_point_texts():
    """Every code point of planes 0-3 and 14 and samples of the others (no
    U+0000, which --jsonl cannot carry), each in a context that shows its
    class to the pattern (letter, number, whitespace or other), 512 a string;
    code points unassigned in Python's Unicode tables go in strings of their
    own. Returns the code points, the texts and, per text, whether its code
    points are assigned."""
    import unicodedata
    r = random.Random(5)
    cps = [c for c in range(1, 0x40000) if not 0xD800 <= c <= 0xDFFF]
    cps += list(range(0xE0000, 0xE1000)) + r.sample(range(0x40000, 0xE0000), 2000)
    cps += r.sample(range(0xF0000, 0x110000), 2000) + [0x10FFFF]
    texts, assigned = [], []
    for flag in (True, False):
        group = [c for c in cps if (unicodedata.category(chr(c)) != "Cn") == flag]
        for i in range(0, len(group), 512):
            texts.append("|".join(code_point_context(c) for c in group[i:i + 512]))
            assigned.append(flag)
    return cps, texts, assigned


def code_point_context(c):
    c = chr(c)
    return f"a{c}{c}1{c}!{c} {c}\t{c}\n"


def test_every_code_point(hf, tiktoken_enc):
    """The pieces (regex matches) of every code point's context equal those of
    GPT2Tokenizer's pre-tokenizer, and the ids those of GPT2Tokenizer and
    tiktoken. Also compares Python's `regex` module (GPT-2's encoder.py):
    it must split the same except at code points unassigned in Python's
    Unicode 14 tables, which it knows from a newer Unicode."""
    import unicodedata
    import regex
    cps, texts, assigned = code_point_texts()
    out = run_jsonl("tokenize", [{"text": s} for s in texts], "--pieces")
    ours = [o["pieces"] for o in out]
    n_pieces = report("code point pieces vs GPT2Tokenizer's pre-tokenizer", texts, ours,
                      [hf_pieces(hf, s) for s in texts])
    ours_ids = [o["ids"] for o in out]
    n_hf = report("code point ids vs GPT2Tokenizer", texts, ours_ids, hf(texts)["input_ids"])
    n_tt = 0
    if tiktoken_enc is not None:
        n_tt = report("code point ids vs tiktoken", texts, ours_ids,
                      tiktoken_enc.encode_ordinary_batch(texts, num_threads=1))
    print(f"code points: {len(cps)} in {len(texts)} strings")
    assert n_pieces == 0 and n_hf == 0 and n_tt == 0

    pat = regex.compile(GPT2_PAT)
    differ = [a for s, a, mine in zip(texts, assigned, ours) if pat.findall(s) != mine]
    print(f"Python regex {regex.__version__}: {differ.count(True)} of {assigned.count(True)} strings of "
          f"assigned code points split differently; {differ.count(False)} of {assigned.count(False)} strings "
          f"of code points unassigned in Unicode {unicodedata.unidata_version} (it has newer tables)")
    assert differ.count(True) == 0
    if tiktoken_enc is None:
        pytest.skip("tiktoken not installed: compared with GPT2Tokenizer only (which passed)")
