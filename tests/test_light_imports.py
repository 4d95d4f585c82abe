"""Loading the settings (what every CLI command does first) imports no heavy dependency."""

from __future__ import annotations

import subprocess
import sys


def test_loading_settings_imports_neither_torch_nor_kafka_clients():
    code = (
        "import sys; from services.settings import load_settings; load_settings(); "
        "print(sorted(m for m in ('torch', 'kafka', 'aiokafka', 'deltalake') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
