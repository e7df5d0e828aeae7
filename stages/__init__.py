"""The pipeline's stages, one short script each, run by dvc.yaml as `python -m stages.<stage>`; the
library they call is the package `classifier`.

Run as `python -m stages.<stage>`, Python imports this package first, before the stage imports
TensorFlow (seconds): the one moment for the start-up of classifier.core.startup (Ctrl-C's one line,
the Keras backend checked, TensorFlow's start-up log quiet). Python sets sys.argv[0] to "-m" while
it looks for the module; importing `stages` from a test does none of this.
"""

import sys

if sys.argv[:1] == ["-m"]:
    from classifier.core.startup import start_stage

    start_stage()
