"""The numeric backbone trains under MirroredStrategy with text vectorized in the input pipeline."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "mirrored_backbone.py"


@pytest.mark.slow
def test_one_step_on_two_replicas_equals_one_replica():
    # A subprocess: logical CPU devices must be configured before TensorFlow initialises.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["max_abs_diff"] <= 1e-5
