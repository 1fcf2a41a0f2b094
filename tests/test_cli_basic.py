"""The CLI's front door: help, version, unknown commands."""
from conftest import run_cli


def test_help_lists_commands():
    p = run_cli("--help")
    assert p.returncode == 0
    assert "logits" in p.stdout


def test_unknown_command_is_one_line_error():
    p = run_cli("frobnicate")
    assert p.returncode != 0
    assert p.stderr.count("\n") == 1 and "unknown command" in p.stderr
