"""The sampler's one-time GC tuning, checked in fresh interpreters (it changes process-wide state)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import gc
from airflow_provider_cplugin.realtime.sampler import YOUNG_GC_THRESHOLD, tune_gc_once
gc.set_threshold({young}, 10, 10)
first, second = tune_gc_once(), tune_gc_once()
print("RESULT", first, second, gc.get_threshold()[0], gc.get_freeze_count() > 0, YOUNG_GC_THRESHOLD)
"""


@pytest.mark.parametrize(
    ("young", "expected_young"),
    [(700, 50_000), (200_000, 200_000), (0, 0)],  # default raised; a higher one or a disabled GC left alone
)
def test_tune_gc_once_freezes_and_raises_the_young_threshold(young: int, expected_young: int) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK.format(young=young)], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    result = next(line for line in out.splitlines() if line.startswith("RESULT")).split()[1:]
    assert result == ["True", "False", str(expected_young), "True", "50000"]
