"""mmzoo.cli.stderr_filter: TensorFlow's C++ start-up lines dropped from fd 2, everything else delivered in order.

Each case runs in a child Python so that the descriptors pytest captures are left alone."""

import os
import re
import subprocess
import sys

from mmzoo.cli.stderr_filter import NOISE

NOISY = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796214406.024205   26208 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors.",
    "I0000 00:00:1796214406.028872   26208 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "E0000 00:00:1796214422.763156   26208 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    "E0000 00:00:1796214682.500011   28118 util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512. "
    "Falling back to the default Eigen-based implementation if present.",
]
KEPT = [
    "E0000 00:00:1796214682.500011   28118 some_kernel.cc:99] a real TensorFlow error",
    "Traceback (most recent call last):",
    "mmzoo train: error: --dataset x.csv: file not found",
    "Warning: naïve UTF-8 survives",
]


def _run(body, **env):
    script = "import os, sys, warnings\nfrom mmzoo.cli.stderr_filter import filtered_stderr\n" + body
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, env=dict(environment, **env),
                          timeout=120)


def test_noise_is_dropped_and_every_other_line_kept_in_order():
    lines = [line for pair in zip(NOISY, KEPT) for line in pair] + NOISY[len(KEPT):]
    body = (f"lines = {lines!r}\n"
            "with filtered_stderr():\n"
            "    for i, line in enumerate(lines):\n"
            "        if i % 2: print(line, file=sys.stderr, flush=True)\n"  # through Python and straight to fd 2
            "        else: os.write(2, (line + '\\n').encode())\n"
            "    warnings.warn('a real warning')\n"
            "    os.write(2, b'no newline at the end')\n"
            "print('after', file=sys.stderr)\n")
    run = _run(body)
    assert run.returncode == 0
    err = run.stderr.decode()
    assert err.splitlines() == [*KEPT, "<string>:8: UserWarning: a real warning", "no newline at the endafter"]


def test_what_a_crashing_command_wrote_still_arrives():
    run = _run(f"with filtered_stderr():\n    os.write(2, {NOISY[1]!r}.encode() + b'\\nbefore the crash\\n')\n"
               "    os._exit(3)\n")
    assert run.returncode == 3 and run.stderr.decode() == "before the crash\n"


def test_tf_cpp_min_log_level_0_shows_everything():
    run = _run(f"with filtered_stderr():\n    os.write(2, {NOISY[1]!r}.encode() + b'\\n')\n", TF_CPP_MIN_LOG_LEVEL="0")
    assert run.stderr.decode() == NOISY[1] + "\n"


def test_tensorflow_start_up_through_the_filter():
    """Whatever this machine's TensorFlow prints at import and first op, no known start-up line gets through."""
    run = _run("with filtered_stderr():\n    import tensorflow as tf\n    print(int(tf.constant(2) + 1))\n")
    assert run.returncode == 0 and run.stdout.decode().strip() == "3"
    noise = re.compile("|".join(NOISE))
    assert not [line for line in run.stderr.decode().splitlines() if noise.match(line)]
