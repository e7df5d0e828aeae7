"""Explanation: what a trained convnet learned (the book's 5.4), for stage `explain`: the activations of
a test image in its first convolutional layers, the patterns that most excite its filters (gradient
ascent in pixel space), and Grad-CAM heatmaps of where it looks; computed (internals) and drawn (pictures).

May import: classifier.core, classifier.intake, classifier.models, classifier.evaluation.
"""
