"""Importing the DAP modules loads no cryptographic library: the tray at rest stays light."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import tray_app.core.rules.prio
from tray_app.core.rules.prio import dap_report, flp, hpke, prime_field, prio3, xof
print(sorted(m for m in ("Crypto", "cryptography") if m in sys.modules))
from tray_app.core.rules.prio import prio3_count
prio3_count().shard(1, bytes(16), bytes(48))
print(sorted(m for m in ("Crypto", "cryptography") if m in sys.modules))
"""


def test_the_libraries_load_on_first_use_only() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "['Crypto']"]
