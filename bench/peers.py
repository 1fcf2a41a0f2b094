#!/usr/bin/env python3
"""The peers of bench/run, each timed in its own process; prints one JSON line.

  peers.py torch MODEL_DIR --threads N [--repeat R] [--what load|all]
      transformers GPT2LMHeadModel, PyTorch eager, use_cache=True, float32
  peers.py llama MODEL.gguf --threads N [--repeat R] [--what load|all]
      llama.cpp through llama-cpp-python
  peers.py gguf MODEL_DIR OUT.gguf --type f32|f16|q8_0 [--tokenizer DIR]
      writes a GGUF (gpt2 architecture, as llama.cpp's convert_hf_to_gguf.py
      lays it out) from the same safetensors weights, with the `gguf` package

The workload is the same as bench/lsc_bench.c: prefill of 128 and 512 random
ids (last position's logits only), and 128 greedy tokens after a 16-token
prompt; the same random ids (the same LCG).
"""
import argparse
import json
import os
import resource
import sys
import time


def random_ids(n, vocab):
    """The ids lsc_bench uses: a 64-bit LCG, (s >> 33) % vocab."""
    s, out = 12345, []
    for _ in range(n):
        s = (s * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append((s >> 33) % vocab)
    return out


def maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_torch(a):
    import torch
    from transformers import GPT2LMHeadModel

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model = GPT2LMHeadModel.from_pretrained(a.path, dtype=torch.float32)
    model.eval()
    out = {"engine": "pytorch", "weights": "f32", "threads": a.threads,
           "load_s": time.perf_counter() - t0, "torch": torch.__version__}
    if a.what == "all":
        ids = torch.tensor([random_ids(512, model.config.vocab_size)])
        with torch.inference_mode():
            for n, key in ((128, "prefill128_tok_s"), (512, "prefill512_tok_s")):
                model(ids[:, :8], use_cache=True, logits_to_keep=1)  # warm-up
                ts = []
                for _ in range(a.repeat):
                    t = time.perf_counter()
                    model(ids[:, :n], use_cache=True, logits_to_keep=1)
                    ts.append(n / (time.perf_counter() - t))
                out[key] = ts
            ts, gen = [], []
            for _ in range(a.repeat):
                o = model(ids[:, :16], use_cache=True, logits_to_keep=1)
                past, gen = o.past_key_values, []
                t = time.perf_counter()
                for _ in range(128):
                    nxt = int(torch.argmax(o.logits[0, -1]))
                    gen.append(nxt)
                    o = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
                    past = o.past_key_values
                ts.append(128 / (time.perf_counter() - t))
            out["decode_tok_s"], out["generated"] = ts, gen
    out["maxrss_mb"] = maxrss_mb()
    print(json.dumps(out))


def bench_llama(a):
    import ctypes
    import numpy as np
    from llama_cpp import Llama

    t0 = time.perf_counter()
    llm = Llama(model_path=a.path, n_ctx=1024, n_batch=512, n_ubatch=512, n_threads=a.threads,
                n_threads_batch=a.threads, logits_all=False, verbose=False)
    out = {"engine": "llama.cpp", "threads": a.threads, "load_s": time.perf_counter() - t0,
           "weights": os.path.basename(a.path).rsplit(".", 1)[0].rsplit("-", 1)[-1]}
    if a.what == "all":
        vocab = llm.n_vocab()
        ids = random_ids(512, vocab)

        def last_logits():
            ptr = llm._ctx.get_logits()
            return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)),
                                         shape=(vocab,))

        for n, key in ((128, "prefill128_tok_s"), (512, "prefill512_tok_s")):
            llm.reset()
            llm.eval(ids[:8])  # warm-up
            ts = []
            for _ in range(a.repeat):
                llm.reset()
                t = time.perf_counter()
                llm.eval(ids[:n])
                ts.append(n / (time.perf_counter() - t))
            out[key] = ts
        ts, gen = [], []
        for _ in range(a.repeat):
            llm.reset()
            llm.eval(ids[:16])
            gen = []
            t = time.perf_counter()
            for _ in range(128):
                nxt = int(np.argmax(last_logits()))
                gen.append(nxt)
                llm.eval([nxt])
            ts.append(128 / (time.perf_counter() - t))
        out["decode_tok_s"], out["generated"] = ts, gen
    out["maxrss_mb"] = maxrss_mb()
    print(json.dumps(out))


def read_safetensors(path):
    """{name: float32 array} from a safetensors file (F32, F16 or BF16), read
    with numpy alone so that the llama.cpp environment needs no more."""
    import numpy as np

    raw = np.memmap(path, dtype=np.uint8, mode="r")
    n = int(np.frombuffer(raw[:8].tobytes(), dtype="<u8")[0])
    header = json.loads(raw[8:8 + n].tobytes())
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b0, b1 = info["data_offsets"]
        buf = raw[8 + n + b0:8 + n + b1]
        if info["dtype"] == "F32":
            arr = np.frombuffer(buf, dtype="<f4")
        elif info["dtype"] == "F16":
            arr = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        elif info["dtype"] == "BF16":
            arr = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{path}: {name}: dtype {info['dtype']} not supported here")
        out[name] = arr.reshape(info["shape"])
    return out


def write_gguf(a):
    """A GGUF of the checkpoint in a.path, laid out as convert_hf_to_gguf.py
    does for GPT-2 (Conv1D weights transposed to [out, in], output.weight a
    copy of the tied embedding), with the GPT-2 tokenizer from a.tokenizer."""
    import gguf
    import numpy as np

    cfg = json.load(open(os.path.join(a.path, "config.json")))
    t = read_safetensors(os.path.join(a.path, "model.safetensors"))
    t = {k[len("transformer."):] if k.startswith("transformer.") else k: v for k, v in t.items()}
    E, L = cfg["n_embd"], cfg["n_layer"]
    w = gguf.GGUFWriter(a.out, "gpt2")
    w.add_name("bench-gpt2")
    w.add_context_length(cfg["n_positions"])
    w.add_embedding_length(E)
    w.add_feed_forward_length(cfg.get("n_inner") or 4 * E)
    w.add_block_count(L)
    w.add_head_count(cfg["n_head"])
    w.add_layer_norm_eps(cfg.get("layer_norm_epsilon", 1e-5))
    w.add_file_type({"f32": 0, "f16": 1, "q8_0": 7}[a.type])
    vocab = json.load(open(os.path.join(a.tokenizer, "vocab.json"), encoding="utf-8"))
    tokens = [None] * len(vocab)
    for s, i in vocab.items():
        tokens[i] = s
    merges = [m for m in open(os.path.join(a.tokenizer, "merges.txt"), encoding="utf-8")
              .read().split("\n")[1:] if m]
    n_vocab = cfg["vocab_size"]
    tokens += [f"[PAD{i}]" for i in range(len(tokens), n_vocab)]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens[:n_vocab])
    w.add_token_types([3 if i == 50256 else 1 for i in range(n_vocab)])
    w.add_token_merges(merges)
    w.add_bos_token_id(50256)
    w.add_eos_token_id(50256)

    qtype = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
             "q8_0": gguf.GGMLQuantizationType.Q8_0}[a.type]

    def add(name, arr):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if arr.ndim == 2 and qtype != gguf.GGMLQuantizationType.F32:
            data = gguf.quants.quantize(arr, qtype)
            w.add_tensor(name, data, raw_dtype=qtype)
        else:
            w.add_tensor(name, arr)

    add("token_embd.weight", t["wte.weight"])
    add("position_embd.weight", t["wpe.weight"])
    add("output.weight", t["wte.weight"])
    add("output_norm.weight", t["ln_f.weight"])
    add("output_norm.bias", t["ln_f.bias"])
    names = {"ln_1": "attn_norm", "ln_2": "ffn_norm", "attn.c_attn": "attn_qkv",
             "attn.c_proj": "attn_output", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
    for i in range(L):
        for hf, gg in names.items():
            wt, b = t[f"h.{i}.{hf}.weight"], t[f"h.{i}.{hf}.bias"]
            add(f"blk.{i}.{gg}.weight", wt if hf.startswith("ln") else wt.T)
            add(f"blk.{i}.{gg}.bias", b)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("engine", choices=["torch", "llama", "gguf"])
    p.add_argument("path")
    p.add_argument("out", nargs="?")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--what", choices=["load", "all"], default="all")
    p.add_argument("--type", choices=["f32", "f16", "q8_0"], default="f32")
    p.add_argument("--tokenizer", default=os.path.join(os.path.dirname(__file__), "..",
                                                        "tests", "data"))
    a = p.parse_args()
    if a.engine == "gguf":
        if not a.out:
            p.error("gguf needs OUT.gguf")
        write_gguf(a)
    elif a.engine == "torch":
        bench_torch(a)
    else:
        bench_llama(a)


if __name__ == "__main__":
    sys.exit(main())
