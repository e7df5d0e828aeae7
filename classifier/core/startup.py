"""Start-up in one place, for every stage (`python -m stages.<stage>`) and every command (`classifier ...`).

Before Keras is imported (seconds of TensorFlow), `starting`:
- makes Ctrl-C and SIGTERM end the process with one line and exit 130 at once (a KeyboardInterrupt in
  the middle of an import would end in a traceback, an unhandled SIGTERM in silence);
- stops it with one line when the Keras backend cannot run here (Keras itself would fail on import
  with a traceback, or later);
- keeps TensorFlow's start-up chatter out of stderr without hiding a real error. A real `dvc repro`
  log had a quarter of its lines from TensorFlow's C++ start-up, some marked E though nothing was
  wrong ("failed call to cuInit" on a machine without a GPU). Most are written before TensorFlow
  reads TF_CPP_MIN_LOG_LEVEL, so stderr goes through a small filter process that drops exactly the
  lines below and passes everything else, in order (a separate process: nothing is lost when the
  main one dies).

Around its main(), `run`: a StageError is one line, `<name>: error: <message>` (exit 1); Ctrl-C or
SIGTERM one line (exit 130; DVC records nothing for a stage that did not finish); a reader that stops
early (`| head -2`) a quiet exit with the status SIGPIPE gives (141), as for `cat`.

Imports classifier.core.backend and classifier.core.errors only.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from classifier.core.backend import backend_unavailable
from classifier.core.errors import StageError

INTERRUPTED = 130  # the shell's exit status for a process ended by Ctrl-C (128 + SIGINT)
# What moved from stages/ to the command line: `python -m stages.predict` says where it went.
MOVED_TO_COMMANDS = ("predict",)


def interrupted_line(stage: str) -> str:
    return (
        f"{stage}: interrupted; nothing of this run is recorded as done: `dvc repro` runs it again "
        f"(a training stage resumes after its last finished epoch)"
    )


def start_stage() -> None:
    """What `python -m stages.<stage>` does first (stages/__init__.py): `starting` for the stage its command
    line names, known before the stage's module is, while Python is still looking for it."""
    stage = started_stage()
    if stage in MOVED_TO_COMMANDS:
        sys.exit(f"`python -m stages.{stage}` is now `classifier {stage}` (make install puts it in .venv/bin)")
    starting(stage, interrupted_line(stage))


def started_stage() -> str:
    """The stage this process runs, from its command line (`python -m stages.train_frozen ...`)."""
    argv = sys.orig_argv
    for index, argument in enumerate(argv[:-1]):
        if argument == "-m":
            return argv[index + 1].rpartition(".")[2]
    return "stage"


def starting(name: str, interrupted: str, uses_keras: bool = True) -> None:
    """Before anything heavy is imported: until `run` takes over, SIGINT and SIGTERM print `interrupted` and
    exit 130; with `uses_keras`, the backend checked and TensorFlow's start-up lines filtered."""

    def stop(signum, frame) -> None:
        print(interrupted, file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if not uses_keras:
        return
    problem = backend_unavailable()
    if problem:
        sys.exit(f"{name}: error: {problem}")
    quiet_tensorflow_startup()


def interrupt(signum, frame) -> None:
    """SIGTERM (`kill`, a queue stopping) ends a run as Ctrl-C does: through the same clean exit."""
    raise KeyboardInterrupt


def run(main: Callable[[], int | None], name: str, interrupted: str) -> int:
    """main()'s exit status (None: 0); 130 after `interrupted` for Ctrl-C or SIGTERM, 141 when the reader
    of stdout stopped early. A StageError exits at once, status 1, with `<name>: error: <message>`
    (SystemExit's own way to print a message)."""
    # Python leaves SIGINT ignored when it started ignored (a command run in the background by a
    # script): a `kill -INT` must still end the run cleanly, as SIGTERM does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        status = main() or 0
        sys.stdout.flush()  # here, where a closed pipe can still be caught
    except StageError as err:
        raise SystemExit(f"{name}: error: {err}") from None
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        return closed_pipe()
    return status


def run_stage(main: Callable[[], None], script: str) -> None:
    """A stage's main() under `run`, named after its script; the process exits unless it succeeded."""
    stage = Path(script).stem
    status = run(main, stage, interrupted_line(stage))
    if status:
        sys.exit(status)


def closed_pipe() -> int:
    """After a BrokenPipeError (the reader stopped early: `| head -2`): stdout to devnull, Python's advice,
    so that the flush at exit does not fail again; the exit status SIGPIPE gives, as for `cat`."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + signal.SIGPIPE


# --- TensorFlow's start-up lines -----------------------------------------------------------------------

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
