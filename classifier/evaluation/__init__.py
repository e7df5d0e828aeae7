"""Evaluation, for stage `evaluate`: every model on the test split, in metrics in plain NumPy, how sure
they are (intervals, McNemar's test), the files DVC plots, the gallery of the worst mistakes, the
report, and the book's accuracies beside ours.

May import: classifier.core, classifier.intake, classifier.models.
"""
