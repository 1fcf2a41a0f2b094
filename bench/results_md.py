"""bench/RESULTS.md is shared by several benchmarks: each writes its own
marked block and keeps everyone else's. A block starts with a line
`<!-- NAME -->` and ends with the next comment line that closes it,
`<!-- ...: end -->` or `<!-- end ... -->` (e.g. `<!-- python-bench: begin -->`
... `<!-- python-bench: end -->`);
text outside blocks is the file's heading. This module is the one place
that reads and rewrites the file."""
import os
import re

COMMENT = re.compile(r"^<!-- (.*) -->$")


def is_end(line):
    m = COMMENT.match(line)
    return bool(m) and (m[1].endswith(": end") or m[1].startswith("end "))


def split_blocks(text):
    """(heading text before the first block, [(begin line, whole block)])."""
    lines = text.split("\n")
    head, blocks, i = [], [], 0
    while i < len(lines):
        m = COMMENT.match(lines[i])
        if not m or is_end(lines[i]):
            if not blocks:
                head.append(lines[i])
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not is_end(lines[j]):
            j += 1
        blocks.append((lines[i], "\n".join(lines[i:j + 1])))
        i = j + 1
    return "\n".join(head).rstrip() + "\n", blocks


def cpu_model():
    """The CPU's model name as /proc/cpuinfo gives it (lscpu's "Model name")."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def cpu_markers(bench, cpu=None):
    """(begin, end) comment lines of `bench`'s section for one CPU model: a
    benchmark run on another CPU adds its own section beside this one."""
    key = (cpu or cpu_model()).replace("--", "-")
    return f"<!-- {bench}: {key}: begin -->", f"<!-- {bench}: {key}: end -->"


def write_block(path, begin, end, body, heading="# logitscope benchmark results\n"):
    """Replaces the block that starts with the line `begin` in `path` (or adds
    it at the end), keeping the heading and every other block as they are.
    `begin` and `end` are whole comment lines; the file is replaced
    atomically."""
    old = open(path).read() if os.path.exists(path) else ""
    head, blocks = split_blocks(old)
    if not old.strip():
        head = heading
    new = f"{begin}\n{body}\n{end}"
    if any(b == begin for b, _ in blocks):
        blocks = [(b, new if b == begin else t) for b, t in blocks]
    else:
        blocks.append((begin, new))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(head.rstrip() + "\n\n" + "\n\n".join(t for _, t in blocks) + "\n")
    os.replace(tmp, path)
