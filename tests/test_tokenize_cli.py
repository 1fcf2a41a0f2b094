"""`logitscope tokenize` / `detokenize`: output, tokenizer.json fallback, and
every kind of bad input (a clear one-line error, non-zero exit, no crash)."""
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import BIN, ROOT, require_oracle, run_cli

DATA = ROOT / "tests" / "data"
SENTENCE = "I think more people would eat tumeric if it were purple."


def one_line_error(p, *parts):
    """Asserts a failed run with one error line on stderr mentioning parts."""
    assert p.returncode != 0, p.stdout
    assert p.stderr.startswith("logitscope: error: ") and p.stderr.count("\n") == 1, p.stderr
    for part in parts:
        assert part in p.stderr, p.stderr
    return p.stderr


def test_table_for_the_notebook_sentence():
    p = run_cli("tokenize", "--model", DATA, SENTENCE, check=True)
    lines = p.stdout.splitlines()
    assert lines[0] == "There are 56 characters and 13 tokens."
    rows = [l.split(None, 2) for l in lines[3:]]
    assert [r[0] for r in rows] == [str(i) for i in range(13)]
    assert rows[1][1:] == ["892", "' think'"]  # the leading space is inside the quotes
    assert rows[12][1:] == ["13", "'.'"]
    assert run_cli("tokenize", "--model", DATA, "--text", SENTENCE).stdout == p.stdout


def test_table_matches_transformers():
    require_oracle()
    from transformers import GPT2Tokenizer
    tok = GPT2Tokenizer.from_pretrained(str(DATA))
    text = "Héllo wörld, it's 2024!\t日本語 👍🏽 <|endoftext|>"
    p = run_cli("tokenize", "--model", DATA, "--json", "--text", text, check=True)
    got = json.loads(p.stdout)
    assert got["ids"] == tok.encode(text)
    assert got["n_chars"] == len(text) and got["n_tokens"] == len(got["ids"])
    assert got["tokens"] == [tok.decode([i]) for i in got["ids"]]
    table = run_cli("tokenize", "--model", DATA, text, check=True).stdout
    assert f"There are {len(text)} characters and {len(got['ids'])} tokens." in table
    assert "'\\t'" in table and "(bytes" in table  # tab escaped; partial emoji bytes shown


def test_no_special_flag():
    a = json.loads(run_cli("tokenize", "--model", DATA, "--json", "<|endoftext|>", check=True).stdout)
    b = json.loads(run_cli("tokenize", "--model", DATA, "--json", "--no-special", "<|endoftext|>", check=True).stdout)
    assert a["ids"] == [50256] and 50256 not in b["ids"] and len(b["ids"]) > 1


def test_detokenize():
    assert run_cli("detokenize", "--model", DATA, "--ids", "6891", check=True).stdout == " coffee\n"
    p = run_cli("detokenize", "--model", DATA, "--json", "--ids", "15496,995,188", check=True)
    assert json.loads(p.stdout) == {"text": "Hello world\x00"}
    p = run_cli("detokenize", "--model", DATA, "--ids", "15496,837,995,5145", "--clean-up-spaces", check=True)
    assert p.stdout == "Hello, world!\n"


def test_clean_up_matches_transformers():
    require_oracle()
    from transformers import GPT2Tokenizer
    tok = GPT2Tokenizer.from_pretrained(str(DATA))
    text = "Hello , world ! I 'm sure you 're right . Do n't go ' there ' ? we 've it 's"
    ids = tok.encode(text)
    p = run_cli("detokenize", "--model", DATA, "--clean-up-spaces", "--ids", ",".join(map(str, ids)), check=True)
    assert p.stdout == tok.clean_up_tokenization(text) + "\n"
    p = run_cli("detokenize", "--model", DATA, "--ids", ",".join(map(str, ids)), check=True)
    assert p.stdout == text + "\n"  # no clean-up unless asked


def test_jsonl_batches():
    inp = '{"text": "Hello world"}\n{"text": ""}\n{"text": " coffee"}\n'
    p = run_cli("tokenize", "--model", DATA, "--jsonl", input=inp, check=True)
    assert [json.loads(l) for l in p.stdout.splitlines()] == [{"ids": [15496, 995]}, {"ids": []}, {"ids": [6891]}]
    p = run_cli("detokenize", "--model", DATA, "--jsonl", input='{"ids": [15496, 995]}\n{"ids": []}\n', check=True)
    assert [json.loads(l) for l in p.stdout.splitlines()] == [{"text": "Hello world"}, {"text": ""}]


def test_bad_command_lines():
    one_line_error(run_cli("tokenize", "--model", DATA), "give the text")
    one_line_error(run_cli("tokenize", "--model", DATA, "a", "b"), "unexpected argument 'b'")
    one_line_error(run_cli("tokenize", "--model", DATA, "--jsonl", "x", input=""), "--jsonl")
    one_line_error(run_cli("tokenize", "--model", DATA, "--bogus", "x"), "--bogus")
    one_line_error(run_cli("detokenize", "--model", DATA), "--ids or --jsonl")
    one_line_error(run_cli("detokenize", "--model", DATA, "--ids", "1,x"), "--ids")
    one_line_error(run_cli("detokenize", "--model", DATA, "--ids", "15496,50257"), "50257", "out of range")
    one_line_error(run_cli("detokenize", "--model", DATA, "--ids", "-1"), "out of range")
    one_line_error(run_cli("tokenize", "--model", "/nonexistent", "x"), "/nonexistent")


def test_invalid_utf8_text():
    # argv bytes 0xff (through surrogateescape)
    one_line_error(run_cli("tokenize", "--model", DATA, "ab\udcff"), "UTF-8", "offset 2")
    p = subprocess.run([str(BIN), "tokenize", "--model", str(DATA), "--jsonl"],
                       input=b'{"text": "ok"}\n{"text": "\xc3("}\n', capture_output=True)
    assert p.returncode != 0 and b"line 2" in p.stderr
    for bad, part in [('{"text": 5}\n', '"text"'), ("not json\n", "not a JSON object"),
                      ('{"text": "a\\u0000b"}\n', "U+0000"), ('{"text": "\\ud800"}\n', "not a JSON object")]:
        one_line_error(run_cli("tokenize", "--model", DATA, "--jsonl", input=bad), "line 1", part)
    for bad in ['{"ids": [1.5]}\n', '{"ids": "1"}\n', '{"ids": [99999999999]}\n', '{}\n']:
        one_line_error(run_cli("detokenize", "--model", DATA, "--jsonl", input=bad), "line 1", '"ids"')
    one_line_error(run_cli("detokenize", "--model", DATA, "--jsonl", input='{"ids": [50257]}\n'), "line 1", "50257")


def make_dir(tmp_path, vocab=None, merges=None):
    """A model folder with (possibly altered) copies of the real files."""
    d = tmp_path / "m"
    d.mkdir(exist_ok=True)
    (d / "vocab.json").write_bytes(vocab if vocab is not None else (DATA / "vocab.json").read_bytes())
    (d / "merges.txt").write_bytes(merges if merges is not None else (DATA / "merges.txt").read_bytes())
    return d


VOCAB = (DATA / "vocab.json").read_bytes()
MERGES = (DATA / "merges.txt").read_bytes()


@pytest.mark.parametrize("vocab,parts", [
    (VOCAB[: len(VOCAB) // 2], ["vocab.json", "invalid JSON", "truncated"]),
    (VOCAB[:-1], ["vocab.json", "invalid JSON"]),
    (b"", ["vocab.json", "invalid JSON"]),
    (b"[]", ["not a JSON object"]),
    (VOCAB.replace(b'"!": 0', b'"!": "0"'), ["not a number"]),
    (VOCAB.replace(b'"\\"": 1,', b'"\\"": 0,'), ["id 0 is given to both"]),
    (VOCAB.replace(b'"<|endoftext|>": 50256', b'"<|endoftext|>": 50257'), ["50257", "outside 0..50256"]),
    (VOCAB.replace(b'"<|endoftext|>": 50256', b'"<|endoftext|>": -1'), ["-1", "outside"]),
    (VOCAB.replace(b'"<|endoftext|>": 50256', b'"\\u4e00": 50256'), ["U+4E00"]),
    (VOCAB.replace(b'"<|endoftext|>": 50256', b'"!": 50256'), ["appears twice"]),
])
def test_bad_vocab(tmp_path, vocab, parts):
    one_line_error(run_cli("tokenize", "--model", make_dir(tmp_path, vocab=vocab), "x"), *parts)


@pytest.mark.parametrize("merges,parts", [
    (MERGES[: len(MERGES) // 2 + 3], ["merges.txt line", "expected two tokens"]),  # cut mid-line
    (MERGES.replace(b"\n\xc4\xa0 t\n", b"\n\xc4\xa0 \xe4\xb8\x80\n", 1), ["merges.txt line 2", "not in the vocabulary"]),
    (MERGES.replace(b"\n\xc4\xa0 t\n", b"\n\xc4\xa0 tzzqqzz\n", 1), ["line 2", "right half is not in the vocabulary"]),
    (MERGES.replace(b"\n\xc4\xa0 t\n", b"\n\xc4\xa0t\n", 1), ["line 2", "expected two tokens"]),
    (MERGES.replace(b"\n\xc4\xa0 t\n", b"\n\xc4\xa0  t\n", 1), ["line 2", "expected two tokens"]),
    (MERGES.replace(b"\n\xc4\xa0 t\n", b"\n\n", 1), ["line 2", "expected two tokens"]),
    (MERGES + MERGES.split(b"\n")[1] + b"\n", ["appears twice", "merge 0"]),
])
def test_bad_merges(tmp_path, merges, parts):
    one_line_error(run_cli("tokenize", "--model", make_dir(tmp_path, merges=merges), "x"), *parts)


def test_missing_files(tmp_path):
    d = make_dir(tmp_path)
    os.unlink(d / "merges.txt")
    one_line_error(run_cli("tokenize", "--model", d, "x"), "no merges.txt and no tokenizer.json")


def tokenizer_json(tmp_path, pair_merges):
    """A folder with only tokenizer.json, merges as "a b" strings or pairs."""
    vocab = json.loads(VOCAB)
    lines = MERGES.decode().split("\n")[1:-1]
    merges = [l.split(" ") for l in lines] if pair_merges else lines
    d = tmp_path / ("pairs" if pair_merges else "strings")
    d.mkdir()
    (d / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {
        "type": "BPE", "vocab": vocab, "merges": merges, "ignore_merges": False}}), encoding="utf-8")
    return d


def test_tokenizer_json_fallback(tmp_path):
    text = "Hello world, it's 日本語 😀 and tumeric <|endoftext|> x"
    want = run_cli("tokenize", "--model", DATA, "--json", text, check=True).stdout
    for pairs in (False, True):
        d = tokenizer_json(tmp_path, pairs)
        assert run_cli("tokenize", "--model", d, "--json", text, check=True).stdout == want
    d = tmp_path / "pairs"
    j = json.loads((d / "tokenizer.json").read_text())
    j["model"]["merges"][5] = ["\u0120", "nosuchtoken"]
    (d / "tokenizer.json").write_text(json.dumps(j))
    one_line_error(run_cli("tokenize", "--model", d, "x"), "model.merges[5]", "not in the vocabulary")
    j["model"]["merges"][5] = 7
    (d / "tokenizer.json").write_text(json.dumps(j))
    one_line_error(run_cli("tokenize", "--model", d, "x"), "model.merges[5]")
    (d / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordPiece"}}))
    one_line_error(run_cli("tokenize", "--model", d, "x"), "BPE")


def test_hf_saved_tokenizer_json(tmp_path):
    """The tokenizer.json that the tokenizers library itself writes."""
    require_oracle()
    from transformers import GPT2Tokenizer
    tok = GPT2Tokenizer.from_pretrained(str(DATA))
    d = tmp_path / "hf"
    d.mkdir()
    tok._tokenizer.save(str(d / "tokenizer.json"))
    text = "Saved by tokenizers: ünïcödé, 123, <|endoftext|>!"
    got = json.loads(run_cli("tokenize", "--model", d, "--json", text, check=True).stdout)
    assert got["ids"] == tok.encode(text)


def test_logits_text_is_the_encoded_ids():
    """--text on a model command runs the same ids as --ids of the encoding."""
    require_oracle()
    from fixtures import NAMES, fixture_dir
    from transformers import GPT2Tokenizer
    d = fixture_dir(NAMES[0])
    text = "Hello, my dog is cute 😀"
    ids = GPT2Tokenizer.from_pretrained(str(d)).encode(text)
    a = run_cli("logits", "--model", d, "--json", "--text", text, check=True).stdout
    b = run_cli("logits", "--model", d, "--json", "--ids", ",".join(map(str, ids)), check=True).stdout
    assert a == b and json.loads(a)


def test_pieces_flag():
    p = run_cli("tokenize", "--model", DATA, "--pieces", "Hello  world's <|endoftext|>ok", check=True)
    assert "7 pieces: 'Hello' ' ' ' world' \"'s\" ' ' '<|endoftext|>' 'ok'" in p.stdout
    p = run_cli("tokenize", "--model", DATA, "--jsonl", "--pieces", "--no-special", input='{"text": "a <|x"}\n', check=True)
    assert json.loads(p.stdout) == {"ids": [64, 1279, 91, 87], "pieces": ["a", " <|", "x"]}
