"""The command line stays quick: ``policyloop --help`` and loading the settings (what every
command does first) import no heavy dependency, although the settings compose every part's
section, the learner's included."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "kafka", "aiokafka", "deltalake", "fastapi", "uvicorn")


def _heavy_modules_after(code: str) -> str:
    probe = f"{code}; import sys; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_loading_settings_imports_neither_torch_nor_kafka_clients():
    code = "from services.cli.settings import load_settings; load_settings()"
    assert _heavy_modules_after(code) == "[]"


def test_policyloop_help_imports_neither_torch_nor_kafka_clients():
    code = (
        "from click.testing import CliRunner; from services.cli.main import cli; "
        "result = CliRunner().invoke(cli, ['--help']); assert result.exit_code == 0, result.output"
    )
    assert _heavy_modules_after(code) == "[]"


def test_serve_help_imports_neither_the_web_framework_nor_torch():
    code = (
        "from click.testing import CliRunner; from services.cli.main import cli; "
        "result = CliRunner().invoke(cli, ['serve', '--help']); "
        "assert result.exit_code == 0, result.output"
    )
    assert _heavy_modules_after(code) == "[]"
