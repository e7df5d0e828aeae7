"""Evaluation: test metrics in plain NumPy, the report, the files DVC plots, the pictures, and
what a convnet learned (activations, filter patterns, Grad-CAM).

May import: classifier.core, classifier.intake, classifier.models.
"""
