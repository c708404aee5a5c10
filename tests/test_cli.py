import subprocess
import sys

from proxy.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for words in COMMANDS:
        assert " ".join(words) in out


def test_unknown_command_exits_2(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_every_command_target_imports():
    import importlib
    for target, _ in COMMANDS.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), target


def test_console_script_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "proxy.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "ramparts COMMAND" in r.stdout
