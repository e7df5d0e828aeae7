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

A signal to the whole process group (Ctrl-C in a terminal, `kill -TERM -<pgid>` from a queue) reaches
the filter too: it ignores SIGINT and SIGTERM (they are blocked from before it starts until it ignores
them) and ends when its input closes, so the interrupted line still goes through it; should the filter
be gone all the same (killed), the line goes to stderr itself. Both signals exit 130, as Ctrl-C does:
one status for "interrupted", which DVC and make report as a failed command.

Output reaches terminals and logs that cannot show every character (PYTHONIOENCODING=ascii in CI, a
Latin-1 terminal): what stdout and stderr cannot encode is written as Python's escapes (`\u0444`)
rather than failing with UnicodeEncodeError; a UTF-8 stream (LANG=C is UTF-8 to Python) is unchanged.

Imports classifier.core.backend, classifier.core.errors and classifier.core.outputs only.
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from classifier.core.errors import StageError
from classifier.core.outputs import space_problem

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
    escape_what_cannot_be_shown()

    def stop(signum, frame) -> None:
        """Nothing has started yet: the line, and out at once (an exception raised here could land where Python
        ignores it, in a garbage collector's callback, and the process would go on)."""
        ignore_interrupts()  # a second signal (Ctrl-C, then the queue's SIGTERM) must not cut the line short
        say(interrupted)
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        restore_stderr()
        os._exit(INTERRUPTED)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    relay_signals_to_the_main_thread()
    if not uses_keras:
        return
    from classifier.core.backend import backend_unavailable  # here: it imports NumPy, after the lines above

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
    escape_what_cannot_be_shown()
    raise_swallowed_interrupts()
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
        ignore_interrupts()  # the run is over: a second signal must not end the line in a traceback
        say(interrupted)
        return INTERRUPTED
    except BrokenPipeError:
        return closed_pipe()
    except Exception as err:  # a write no `outputs.writing` names: a full disk or a file-size limit is one line still
        problem = space_problem(err)
        if problem is None:
            raise
        raise SystemExit(f"{name}: error: {problem}") from None
    return status


def run_stage(main: Callable[[], None], script: str) -> None:
    """A stage's main() under `run`, named after its script; the process exits unless it succeeded."""
    stage = Path(script).stem
    status = run(main, stage, interrupted_line(stage))
    if status:
        sys.exit(status)


def raise_swallowed_interrupts() -> None:
    """A KeyboardInterrupt raised where Python ignores exceptions (in a garbage collector's callback, as JAX
    installs one, or a __del__) would leave the run going on after Ctrl-C or SIGTERM: it is raised again."""
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if issubclass(unraisable.exc_type, KeyboardInterrupt):
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not handled yet: sent again, from
                _thread.start_new_thread(send_sigint_soon, ())  # a thread, to arrive once this hook has returned
            return
        previous(unraisable)

    sys.unraisablehook = hook


WAKE = signal.SIGWINCH  # a signal whose default is to be ignored: its handler here does nothing


def relay_signals_to_the_main_thread() -> None:
    """Python runs a signal's handler in the main thread, when that thread next runs Python code; the kernel may
    hand a signal to any thread (a second one in a row, Ctrl-C then a queue's SIGTERM, goes to another thread
    while the first waits for the main one), and then a main thread waiting in a long call (a pool of processes,
    a sleep, a read) hears of it only when the call ends: minutes later. So, once per process: CPython writes
    each signal's number to a wakeup pipe, and a thread reading it sends the main thread WAKE, which ends its
    wait; the pending handlers then run. Nothing happens where the main thread got the signal itself."""
    if _relay or threading.current_thread() is not threading.main_thread():
        return
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
    signal.signal(WAKE, lambda signum, frame: None)
    main = threading.main_thread().ident

    def relay() -> None:
        while numbers := os.read(reader, 64):
            if any(number != WAKE for number in numbers):
                signal.pthread_kill(main, WAKE)

    _relay.append(threading.Thread(target=relay, name="signal relay", daemon=True))
    _relay[0].start()


_relay: list = []  # the thread that relays signals to the main thread, once started


def send_sigint_soon() -> None:
    time.sleep(0.001)
    os.kill(os.getpid(), signal.SIGINT)


def ignore_interrupts() -> None:
    """Further SIGINT and SIGTERM do nothing: a handler that does nothing, not SIG_IGN, for one already on its way
    (handled by another thread) would then have Python report a "race condition" on stderr."""
    signal.signal(signal.SIGINT, stopping_already)
    signal.signal(signal.SIGTERM, stopping_already)


def stopping_already(signum, frame) -> None:
    pass


def say(line: str) -> None:
    """`line` on stderr; should stderr's filter be gone (killed with the process group), on stderr itself."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        if unfiltered_stderr():
            with contextlib.suppress(OSError):
                print(line, file=sys.stderr, flush=True)  # stderr writes through: the failed line was dropped


def escape_what_cannot_be_shown() -> None:
    """stdout and stderr write what their encoding cannot (a non-ASCII name under PYTHONIOENCODING=ascii, a
    name's undecodable bytes) as escapes, where they would raise UnicodeEncodeError; once, for every process."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


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

# Started with SIGINT and SIGTERM blocked (inherited through exec), it ignores them before unblocking: a
# signal to the process group leaves it passing the stage's last lines; it ends when its input closes.
FILTER_PROGRAM = """
import re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
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
    interrupts = {signal.SIGINT, signal.SIGTERM}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, interrupts)  # held here until the filter is started
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
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a signal that came meanwhile is handled now
    os.dup2(process.stdin.fileno(), 2)
    process.stdin.close()
    _filtered.update(original=original, process=process)
    atexit.register(restore_stderr)


_filtered: dict = {}  # the filter of stderr, once started: `original` (stderr itself, a duplicate) and `process`


def unfiltered_stderr() -> bool:
    """stderr back to where it was, not through the filter (closing its pipe); False where there is no filter."""
    if not _filtered:
        return False
    os.dup2(_filtered["original"], 2)
    return True


def restore_stderr() -> None:
    """At exit: stderr back to where it was (closing the pipe), and the filter's last lines out first."""
    with contextlib.suppress(OSError):  # the filter may be gone: what it cannot take stays in the buffer
        sys.stderr.flush()
    if not unfiltered_stderr():
        return
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    try:
        _filtered["process"].wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
