"""The installable library: `make install PREFIX=...` puts the header, both
libraries, the CLI and logitscope.pc in place; the header's own usage example
builds against the installed copy with pkg-config (shared and static) and
runs; the shared library exports only the header's LSC_API functions."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT
from fixtures import fixture_dir

HEADER = ROOT / "include" / "logitscope.h"
SANITIZED = "ASAN_OPTIONS" in os.environ  # make test-sanitize: the libraries need ASan first


def header_example():
    """The program in the header's "Usage" comment, as a C file's text."""
    text = HEADER.read_text()
    block = text[text.index(" * Usage:"):text.index(" * Conventions:")]
    lines = [l[7:] for l in block.splitlines() if l.startswith(" *     ")]
    assert lines[0].startswith("#include <logitscope.h>")
    return "\n".join(lines) + "\n"


def header_functions():
    return set(re.findall(r"^LSC_API [^(]*?\b(lsc_\w+)\(", HEADER.read_text(), re.M))


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    if shutil.which("pkg-config") is None:
        pytest.fail("pkg-config is needed (scripts/install-deps installs it)")
    pre = tmp_path_factory.mktemp("prefix")
    subprocess.run(["make", "-s", "-C", str(ROOT), f"BUILD={BUILD}", f"PREFIX={pre}", "install"],
                   check=True, capture_output=True, text=True)
    return pre


def test_install_layout(prefix):
    version = re.search(r'#define LSC_VERSION "(\d+)\.', HEADER.read_text()).group(1)
    for f in ["include/logitscope.h", "lib/liblogitscope.a", f"lib/liblogitscope.so.{version}",
              "lib/liblogitscope.so", "lib/pkgconfig/logitscope.pc", "bin/logitscope"]:
        assert (prefix / f).exists(), f
    so = prefix / "lib" / "liblogitscope.so"
    soname = subprocess.run(["readelf", "-d", str(so)], capture_output=True, text=True).stdout
    assert f"Library soname: [liblogitscope.so.{version}]" in soname
    p = subprocess.run([str(prefix / "bin" / "logitscope"), "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("logitscope ")


def test_shared_library_exports_only_the_header(prefix):
    nm = subprocess.run(["nm", "-D", "--defined-only", str(prefix / "lib" / "liblogitscope.so")],
                        capture_output=True, text=True, check=True).stdout
    exported = {l.split()[-1] for l in nm.splitlines() if l.strip()}
    assert exported == header_functions(), (exported ^ header_functions())


@pytest.mark.parametrize("static", [False, True], ids=["shared", "static"])
def test_header_example_builds_with_pkg_config(prefix, tmp_path, static):
    src = tmp_path / "example.c"
    src.write_text(header_example())
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", *(["--static"] if static else []),
                            "logitscope"], env=env, capture_output=True, text=True, check=True).stdout.split()
    assert f"-I{prefix}/include" in flags and f"-L{prefix}/lib" in flags
    if static:  # the archive itself, with the libraries it needs (Libs.private)
        flags = [str(prefix / "lib" / "liblogitscope.a") if f == "-llogitscope" else f for f in flags]
    exe = tmp_path / "example"
    cc = ["cc", "-std=c11", "-Wall", "-Werror", *(["-fsanitize=address,undefined"] if SANITIZED else []),
          str(src), "-o", str(exe), *flags]
    subprocess.run(cc, check=True, capture_output=True, text=True)
    run_env = dict(os.environ, LD_LIBRARY_PATH=str(prefix / "lib"))
    ldd = subprocess.run(["ldd", str(exe)], env=run_env, capture_output=True, text=True).stdout
    assert ("liblogitscope.so" in ldd) != static, ldd
    p = subprocess.run([str(exe), str(fixture_dir("tiny"))], env=run_env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    # the same answer as the CLI
    ids = subprocess.run([str(prefix / "bin" / "logitscope"), "next", "--model", str(fixture_dir("tiny")),
                          "Hello, my dog", "--json"], capture_output=True, text=True, check=True).stdout
    assert p.stdout == f"next token id: {__import__('json').loads(ids)['argmax']['id']}\n"
