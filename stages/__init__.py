"""The pipeline's stages, one short script each (`python -m stages.<stage>`); the library they call is
the package `classifier`.

Run as `python -m stages.<stage>`, Python imports this package first, before any stage
imports TensorFlow: the one moment to quiet TensorFlow's start-up log (Python sets
sys.argv[0] to "-m" while it looks for the module; importing `stages` from a test does not).
"""

import sys

if sys.argv[:1] == ["-m"]:
    from stages._startup_log import quiet_tensorflow_startup

    quiet_tensorflow_startup()
