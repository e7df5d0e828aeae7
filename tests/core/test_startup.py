"""classifier/core/startup.py: how every stage and command starts and ends. `run` turns a StageError into
one line (`<name>: error: ...`, exit 1), Ctrl-C into the interrupted line and 130, a reader that stopped
early into a quiet 141; `python -m stages.predict` says where predict went; and TensorFlow's start-up
chatter is filtered out of stderr, every other line kept, in order.

The same seen from outside, in real stage processes (signals, a closed pipe, a missing backend):
tests/hostile/test_one_line_at_every_edge.py and tests/hostile/test_params_and_runs.py."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys

import pytest

from classifier.core import startup
from classifier.core.errors import ParamsError, StageError
from tests.support.paths import ROOT


@pytest.fixture(autouse=True)
def signal_handlers():
    """`run` sets the handlers of SIGINT and SIGTERM for the process it ends: put pytest's back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def python(code_or_module: list[str], **env) -> subprocess.CompletedProcess:
    """`python ARGUMENTS` in the repository, TensorFlow's stderr filter not yet started."""
    environment = {key: value for key, value in os.environ.items() if key != startup.FILTERED}
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run(
        [sys.executable, *code_or_module],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- run: how a stage or command ends --------------------------------------------------------------------


def test_a_stage_error_ends_the_process_with_one_line_naming_it():
    def main():
        raise StageError("--model absent.keras is not a file")

    with pytest.raises(SystemExit) as info:
        startup.run(main, "predict", startup.interrupted_line("predict"))
    assert info.value.code == "predict: error: --model absent.keras is not a file"  # SystemExit prints it, exit 1
    assert info.value.__suppress_context__  # no "During handling of the above exception" below it


def test_a_params_error_is_a_stage_error_there_too():
    def main():
        raise ParamsError("params.yaml: unknown key learning_rat")

    with pytest.raises(SystemExit) as info:
        startup.run(main, "check_params", "check_params: interrupted")
    assert info.value.code == "check_params: error: params.yaml: unknown key learning_rat"


def test_ctrl_c_is_the_interrupted_line_and_130(capsys):
    def main():
        raise KeyboardInterrupt

    assert startup.run(main, "train_frozen", startup.interrupted_line("train_frozen")) == 130
    assert capsys.readouterr().err == (
        "train_frozen: interrupted; nothing of this run is recorded as done: `dvc repro` runs it again "
        "(a training stage resumes after its last finished epoch)\n"
    )


def test_main_s_own_status_is_the_exit_status_none_is_0():
    assert startup.run(lambda: None, "results", "results: interrupted") == 0
    assert startup.run(lambda: 3, "paired", "paired: interrupted") == 3


def test_run_stage_names_the_stage_after_its_script_and_returns_on_success():
    assert startup.run_stage(lambda: None, "/somewhere/stages/train_frozen.py") is None

    def main():
        raise StageError("no images")

    with pytest.raises(SystemExit) as info:
        startup.run_stage(main, "/somewhere/stages/split.py")
    assert info.value.code == "split: error: no images"


CLOSED_PIPE = """
import sys
from classifier.core.startup import run

def main():
    for index in range(100_000):
        print(f"photo_{index}.jpg, cat, 0.9")

sys.exit(run(main, "predict", "predict: interrupted"))
"""


def test_a_reader_that_stops_early_ends_the_process_quietly_with_141():
    """As `classifier predict DIR | head -2`: the reader's end of stdout is closed."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(
            [sys.executable, "-c", CLOSED_PIPE], cwd=ROOT, stdout=writer, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(writer)
    assert result.returncode == 141 == 128 + signal.SIGPIPE
    assert result.stderr == ""  # no traceback, no "Exception ignored ... BrokenPipeError" at exit


# --- the stage a process runs, and what moved to the command line ------------------------------------------


def test_the_stage_is_read_from_the_command_line(monkeypatch):
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "-m", "stages.train_frozen", "--flag"])
    assert startup.started_stage() == "train_frozen"
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "script.py"])
    assert startup.started_stage() == "stage"


def test_python_m_stages_predict_says_it_is_now_classifier_predict_in_one_line():
    result = python(["-m", "stages.predict", "photos", "--top", "2"])
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "`python -m stages.predict` is now `classifier predict` (make install puts it in .venv/bin)"
    ]
    assert result.stdout == ""
    assert "predict" in startup.MOVED_TO_COMMANDS


# --- TensorFlow's start-up lines ---------------------------------------------------------------------------

CHATTER = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795415650.143984   13060 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1795415650.144691   13060 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    "GPU will not be used.",
    "E0000 00:00:1795416641.794686   17039 node_def_util.cc:682] NodeDef mentions attribute "
    "use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset>",
]
CUINIT = (
    "E0000 00:00:1795415651.231594   13060 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)"
)
REAL = [
    "E0000 00:00:1795415651.231594   13060 some_kernel.cc:10] OOM when allocating tensor with shape[64,512,512]",
    "W0000 00:00:1795415651.231594   13060 gpu_device.cc:2341] Cannot dlopen some GPU libraries.",
    "Traceback (most recent call last):",
    "train_frozen: error: params.yaml: unknown key learning_rat (did you mean lr?)",
]


def test_the_filter_drops_the_chatter_and_keeps_everything_else():
    without_gpu, with_gpu = re.compile(startup.noise_pattern(False)), re.compile(startup.noise_pattern(True))
    assert all(without_gpu.match(line) for line in [*CHATTER, CUINIT])
    assert not any(without_gpu.match(line) for line in REAL)
    assert not with_gpu.match(CUINIT)  # with an NVIDIA driver, failing to start CUDA is a real error


QUIETED = """
import os, sys
from classifier.core.startup import quiet_tensorflow_startup

quiet_tensorflow_startup()
print(os.environ["TF_CPP_MIN_LOG_LEVEL"], flush=True)
for line in sys.argv[1:]:
    os.write(2, (line + "\\n").encode())  # as TensorFlow's C++ writes: to the file descriptor, unbuffered
"""


def test_a_quieted_process_shows_every_line_but_the_chatter_in_order():
    mixed = [CHATTER[0], REAL[0], CHATTER[1], CHATTER[2], REAL[1], CUINIT, REAL[2], CHATTER[3], REAL[3]]
    result = python(["-c", QUIETED, *mixed])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2\n"  # TensorFlow's own log: errors only, once it is set up
    kept = REAL if not startup.has_gpu_driver() else [REAL[0], REAL[1], CUINIT, REAL[2], REAL[3]]
    assert result.stderr.splitlines() == kept


def test_a_process_started_by_a_quieted_one_is_not_filtered_twice():
    """Worker processes inherit the filtered stderr (and the variable that says so): no second filter."""
    result = python(["-c", QUIETED, *CHATTER], **{startup.FILTERED: "1", "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0\n"  # a level already set is kept
    assert result.stderr.splitlines() == CHATTER


# --- signals to the process group, and terminals that cannot show every character --------------------------------

FILTER_KILLED = """
import os, signal, sys
from classifier.core import startup

startup.quiet_tensorflow_startup()
os.kill(startup._filtered["process"].pid, signal.SIGKILL)
startup._filtered["process"].wait()
startup.say("demo: interrupted")
"""


def test_the_interrupted_line_reaches_stderr_itself_when_the_filter_is_killed():
    result = python(["-c", FILTER_KILLED])
    assert result.returncode == 0, result.stderr
    assert result.stderr == "demo: interrupted\n"


def test_after_ctrl_c_a_second_signal_is_ignored_while_the_run_ends(capsys):
    def main():
        raise KeyboardInterrupt

    assert startup.run(main, "demo", "demo: interrupted") == 130
    assert signal.getsignal(signal.SIGINT) is signal.getsignal(signal.SIGTERM) is startup.stopping_already
    assert capsys.readouterr().err == "demo: interrupted\n"


@pytest.mark.parametrize(
    ("encoding", "errors", "written"),
    [("ascii", "strict", b"\\u0444\\u2026 \\udcff"), ("latin-1", "strict", b"\\u0444\\u2026 \\udcff"),
     ("utf-8", "strict", "ф… ".encode() + b"\\udcff"), ("utf-8", "surrogateescape", "ф… ".encode() + b"\xff")],
)  # fmt: skip
def test_what_a_stream_cannot_encode_is_escaped(monkeypatch, encoding, errors, written):
    """A non-ASCII name, compare's `…`, a file name's byte that is not UTF-8 (a surrogate, as Python decodes it):
    escaped where the stream would raise; a UTF-8 stream in Python's UTF-8 mode (LANG=C) writes the byte back."""
    buffers = {name: io.BytesIO() for name in ("stdout", "stderr")}
    for name, buffer in buffers.items():
        monkeypatch.setattr(sys, name, io.TextIOWrapper(buffer, encoding=encoding, errors=errors, write_through=True))
    startup.escape_what_cannot_be_shown()
    for name in buffers:
        getattr(sys, name).write("ф… \udcff")
    assert buffers["stdout"].getvalue() == buffers["stderr"].getvalue() == written
