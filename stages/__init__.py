"""The pipeline's stages, one short script each (`python -m stages.<stage>`); the library they call is
the package `classifier`.

Run as `python -m stages.<stage>`, Python imports this package first, before the stage imports
TensorFlow (seconds): the one moment to make SIGINT and SIGTERM end it with one line, to check the
Keras backend, and to quiet TensorFlow's start-up log (Python sets sys.argv[0] to "-m" while it
looks for the module; importing `stages` from a test does none of this).
"""

import sys

if sys.argv[:1] == ["-m"]:
    from classifier.core.cli import stage_starting
    from stages._startup_log import quiet_tensorflow_startup, started_stage

    stage = started_stage()
    stage_starting(stage, "predict: interrupted" if stage == "predict" else None)
    quiet_tensorflow_startup()
