"""classifier/commands/experiment_runs.py: a signal to the command goes on to DVC's whole process group,
which is waited for (the commands that use it: tests/commands/test_own.py, tests/e2e/test_own_e2e.py)."""

from __future__ import annotations

import os
import signal
import sys
import threading

from classifier.commands.experiment_runs import Stops, run_dvc
from tests.support.stages import process_gone, wait_for


def test_a_signal_goes_to_dvc_s_process_group_and_is_waited_for(capfd):
    child = (
        "import signal, subprocess, sys, time\n"
        "grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(grandchild.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    stops = Stops()
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    with stops.handling():
        status = run_dvc([sys.executable, "-c", child], stops)
    assert stops.received == [signal.SIGTERM] and status == -signal.SIGINT  # stopped by the SIGINT passed on
    grandchild = int(capfd.readouterr().out.split()[0])
    wait_for(lambda: process_gone(grandchild), seconds=10)  # the whole group was told, not only DVC
