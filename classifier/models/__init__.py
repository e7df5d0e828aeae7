"""Models: convolutional bases, heads and the book's small convnet (Keras functional API, the
preprocessing inside), augmentation, saving and loading, batches, training and checkpoints,
and running a model over image arrays.

May import: classifier.core, classifier.intake.
"""
