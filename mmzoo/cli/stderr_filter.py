"""Keep TensorFlow's C++ start-up lines off the command line's stderr; every other byte passes unchanged.

TensorFlow writes a few lines while it is imported and while it first looks for devices (the oneDNN notice, CUDA
stubs on a machine without a GPU, which CPU instructions the build could use), before abseil's logging is
initialised: `TF_CPP_MIN_LOG_LEVEL` does not reach them, and abseil then prints every level (an open abseil-cpp
issue). They are written from C++ to file descriptor 2, below Python's `sys.stderr`, so the descriptor is the
only place to drop them: while a command runs, fd 2 is a pipe read by a small child process that forwards each
line unless it is one of `NOISE`. A child rather than a thread, so that what a crashing command wrote still
reaches the terminal; in its own session, so that Ctrl-C interrupts the command and not the filter.

`TF_CPP_MIN_LOG_LEVEL=0`, set by the user, turns the filter off: all of TensorFlow's messages are wanted.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

# Each pattern: the start of one line TensorFlow writes at start-up on a machine it runs on correctly.
NOISE = (
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"[IWE]\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on",
    r"[IWE]\d{4} [\d:.]+ +\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers",
    r"[IWE]\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit",
    r"[IWE]\d{4} [\d:.]+ +\d+ cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
    r"To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags",
    # Logged once per op while a model with masks trains on a CPU whose oneDNN build lacks bool kernels.
    r"[IWE]\d{4} [\d:.]+ +\d+ util\.cc:\d+\] oneDNN supports DT_BOOL only on platforms with AVX-512",
)

# The child (run isolated: `python -I -S`, nothing from the working directory): lines from stdin to stdout minus
# the patterns in argv[1]. A partial line that cannot be the start of a noise line (they all begin with "W", "I",
# "E" or "T") is passed on at once, so prompts and progress written without a newline are not held back. Should
# anything go wrong in it, it copies the rest through unchanged: the command's stderr is never lost.
_CHILD = r"""
import os, re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
def write(data):
    while data:
        data = data[os.write(1, data):]
held = b""
try:
    noise = re.compile(sys.argv[1].encode())
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        *lines, held = (held + chunk).split(b"\n")
        out = b"".join(line + b"\n" for line in lines if not noise.match(line))
        if held and held[:1] not in b"WIET":
            out, held = out + held, b""
        write(out)
    if held and not noise.match(held):
        write(held)
except Exception:
    write(held)
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        write(chunk)
"""


@contextlib.contextmanager
def filtered_stderr():
    """Within the block, fd 2 (and `sys.stderr`) goes through the filter; restored, and every line delivered,
    on leaving it. Does nothing where the filter cannot start or the user asked for all logs."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    opened = []
    try:
        sys.stderr.flush()
        opened.append(os.dup(2))
        opened.extend(os.pipe())
        saved, read_end, write_end = opened
        child = subprocess.Popen([sys.executable, "-I", "-S", "-c", _CHILD, "|".join(NOISE)], stdin=read_end,
                                 stdout=saved, stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except (OSError, ValueError, AttributeError):  # AttributeError: no sys.stderr (pythonw)
        for fd in opened:
            os.close(fd)
        yield
        return
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end closes: the child forwards what is left and exits
        os.close(saved)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=10)  # longer only if a process the command started still holds the pipe
