"""The commands of `classifier` (classifier.cli), one module each: its docstring is its --help, its
`run(args)` does the work and returns the exit status. They run the pipeline as DVC experiments
(own, demo), read its results (results, compare, paired), change params.yaml (recipe), use a
trained model (predict) and help run it (plots-page, local-cluster). experiment_runs is no command:
it runs `dvc exp run` under signals for own and demo.

May import: every package of classifier; nothing imports them but classifier.cli.
"""
