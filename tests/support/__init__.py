"""The one home of the tests' helpers, by concern: where things are (paths), files and images made in
a test (files), params.yaml for a test's workspace (params), running a stage and reading its one line
(stages), what the intake makes of a raw folder (intake), tiny Keras models (models), fitting watched
epoch by epoch (training), a tiny workspace for extract_features and train_classifier (features),
scratch repositories with the tiny pipeline (repos), and tiny child processes (processes).
Fixtures live in tests/conftest.py; a test module keeps only the helpers no other module needs.
"""
