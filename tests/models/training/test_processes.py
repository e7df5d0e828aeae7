"""classifier/models/training/processes.py: child processes that end together, run here on tiny Python
children: a failure stops the others, a signal to this process reaches them all, one that does not
stop is killed, what a stopped one leaves in its group goes too, one that cannot start leaves none of the
others running; how each ended, in words; and the small program a training stage becomes to run its
launcher."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from classifier.models.training import processes
from classifier.models.training.processes import Children, exit_status, how_it_ended, supervise
from tests.support.processes import alive, python, sleeper

FAST = 0.5  # the grace, in seconds, given here to a process told to stop


@pytest.mark.parametrize(
    ("returncode", "words", "status"),
    [
        (0, "exit status 0", 0),
        (3, "exit status 3", 3),
        (-signal.SIGKILL, "killed by SIGKILL", 137),
        (-signal.SIGSEGV, "killed by SIGSEGV", 139),
        (-signal.SIGTERM, "killed by SIGTERM", 143),
        (-77, "killed by signal 77", 205),
    ],
)
def test_how_a_process_ended_in_words_and_as_the_shell_s_status(returncode, words, status):
    assert how_it_ended(returncode) == words
    assert exit_status(returncode) == status  # never sys.exit's 256 - 9 = 247


def test_the_first_failure_stops_the_others_and_is_named():
    with Children(grace=FAST) as children:
        sleepers = [children.start(sleeper()) for _ in range(2)]
        children.start(python("import sys; sys.exit(3)"))
        ended = children.wait()
    assert ended.failed == [2] and ended.codes[2] == 3
    assert ended.stopped == 2 and ended.killed == 0 and ended.signum is None
    assert all(process.returncode == -signal.SIGTERM for process in sleepers)


def test_all_succeeding_is_no_failure():
    with Children(grace=FAST) as children:
        for _ in range(3):
            children.start(python("pass"))
        ended = children.wait()
    assert ended.codes == [0, 0, 0] and not ended.failed and not ended.stopped


def test_a_signal_to_this_process_reaches_every_child_and_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with Children(grace=FAST) as children:
        started = [children.start(sleeper()) for _ in range(3)]
        os.kill(os.getpid(), signal.SIGTERM)
        ended = children.wait()
    assert ended.signum == signal.SIGTERM and ended.stopped == 3 and not ended.failed
    assert [process.returncode for process in started] == [-signal.SIGTERM] * 3
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_process_that_does_not_stop_is_killed_after_the_grace():
    stubborn = python(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(60)"
    )
    began = time.monotonic()
    with Children(grace=FAST) as children:
        started = children.start(stubborn, stdout=-1)
        started.stdout.readline()  # its handler is in place
        children.start(python("import sys; sys.exit(1)"))
        ended = children.wait()
    started.stdout.close()
    assert ended.failed == [1] and ended.killed == 1 and ended.why_killed == f"after {FAST:g} s"
    assert started.returncode == -signal.SIGKILL and time.monotonic() - began < 5


def test_what_a_stopped_process_left_in_its_group_is_stopped_too(tmp_path):
    pid_file = tmp_path / "grandchild"
    leaves_one = python(
        "import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid)); sys.exit(4)"
    )
    with Children(grace=FAST) as children:
        children.start(leaves_one)
        ended = children.wait()
    assert ended.failed == [0] and ended.codes == [4]
    assert not alive(int(pid_file.read_text()))


def test_a_command_that_cannot_start_leaves_none_of_the_others_running():
    with pytest.raises(FileNotFoundError), Children(grace=FAST) as children:
        started = children.start(sleeper())
        children.start(["no-such-program-here"])
    assert started.returncode == -signal.SIGTERM


def test_the_reasons_a_process_cannot_start(tmp_path):
    reason, status = processes.start_failure(FileNotFoundError(2, "No such file or directory"), "nope")
    assert (reason, status) == ("no program 'nope' (not on PATH, or a script whose interpreter is missing)", 127)
    assert processes.start_failure(PermissionError(13, "Permission denied"), "./x")[1] == 126
    reason, status = processes.start_failure(OSError(24, "Too many open files"), "python")
    assert reason.startswith("no more open files allowed (Too many open files; ulimit -n is ") and status == 1
    reason, status = processes.start_failure(BlockingIOError(11, "Resource temporarily unavailable"), "python")
    assert reason.startswith("no more processes allowed (Resource temporarily unavailable; ulimit -u is ")


@pytest.mark.parametrize(
    ("command", "status", "line"),
    [
        (["false"], 1, "the launcher, CLUSTER_LAUNCHER='shown', failed (exit status 1); its own lines above"),
        (python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), 137, "failed (killed by SIGKILL)"),
        (["no-such-launcher"], 127, "the launcher, CLUSTER_LAUNCHER='shown', did not start: no program"),
    ],
)
def test_a_launcher_that_fails_is_one_line_with_its_status(capsys, command, status, line):
    assert supervise("train_frozen", "shown", command) == status
    err = capsys.readouterr().err
    assert err.startswith("train_frozen: error: training.distribute: multi_host: ") and line in err
    assert err.count("\n") == 1


def test_a_launcher_that_succeeds_says_nothing(capsys):
    assert supervise("train_frozen", "shown", python("pass")) == 0
    assert capsys.readouterr().err == ""


def test_the_program_a_stage_becomes_takes_its_name_the_launcher_and_the_command():
    assert processes.main(["train_frozen", "true", "--", sys.executable, "-c", "pass"]) == 0
