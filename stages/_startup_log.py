"""Keeping TensorFlow's start-up chatter out of the stages' output, without hiding a real error.

A real `dvc repro` log had a quarter of its lines from TensorFlow's C++ start-up, some marked
E though nothing was wrong ("failed call to cuInit" on a machine without a GPU). Most of them
are written before TensorFlow reads TF_CPP_MIN_LOG_LEVEL, so the variable alone does not
silence them: the stage's stderr goes through a small filter process that drops exactly the
lines below and passes everything else, in order. A separate process, so that nothing is
lost when the stage dies (its last lines are in the pipe, and the filter reads to the end).
Also which stage a process runs, known from its command line before the stage's module is.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from pathlib import Path

FILTERED = "PIPELINE_STDERR_FILTERED"  # set once the filter is in place: worker processes share it

NOISE = [
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"I\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w.]+:\d+\] ",  # TensorFlow's INFO lines (glog format)
    r"To enable the following instructions: .*rebuild TensorFlow",  # the end of one of them
    # tf.data graphs name an attribute this TensorFlow's op set lacks; TensorFlow says it ignores it.
    r"E\d{4} .*NodeDef mentions attribute use_unbounded_threadpool which is not in the op definition",
]
# Without an NVIDIA driver TensorFlow cannot start CUDA and says so as an error, then runs on the
# CPU as it should; with a driver, the same line is a real problem and stays.
NO_GPU_NOISE = r"E\d{4} .*failed call to cuInit"

FILTER_PROGRAM = """
import re, sys
noise = re.compile(sys.argv[1].encode())
for line in sys.stdin.buffer:
    if not noise.match(line):
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
"""


def noise_pattern(gpu_driver: bool) -> str:
    return "|".join(NOISE if gpu_driver else [*NOISE, NO_GPU_NOISE])


def has_gpu_driver() -> bool:
    return Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists()


def quiet_tensorflow_startup() -> None:
    """Before TensorFlow loads: its own log at ERROR and above, and the start-up lines filtered."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # INFO and WARNING, once TensorFlow's log is set up
    if os.environ.get(FILTERED):
        return
    os.environ[FILTERED] = "1"
    sys.stderr.flush()
    original = os.dup(2)
    try:
        process = subprocess.Popen(
            [sys.executable, "-S", "-c", FILTER_PROGRAM, noise_pattern(has_gpu_driver())],
            stdin=subprocess.PIPE,
            stdout=original,
            stderr=original,
        )
    except OSError:
        os.close(original)
        return  # no filter: the chatter shows, nothing else changes
    os.dup2(process.stdin.fileno(), 2)
    process.stdin.close()

    def restore() -> None:
        """At exit: stderr back to where it was (closing the pipe), and the filter's last lines out first."""
        sys.stderr.flush()
        os.dup2(original, 2)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    atexit.register(restore)


def started_stage() -> str:
    """The stage this process runs, from its command line (`python -m stages.train_frozen ...`): known
    before the stage's module is, while Python is still looking for it."""
    argv = sys.orig_argv
    for index, argument in enumerate(argv[:-1]):
        if argument == "-m":
            return argv[index + 1].rpartition(".")[2]
    return "stage"
