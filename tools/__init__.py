"""For maintainers only, not for users (their commands are `classifier ...`): the scratch repository
the end-to-end tests and the benchmarks build (scratch_repo.py), and the script that reproduces the
two-task experiment of docs/results.md (two_tasks.py). Run as `python -m tools.<name>` from the
repository's root. Imports nothing of classifier or stages.
"""
