"""Serving: what a trained model is used for outside the pipeline: classifying new images,
exporting for serving (SavedModel, LiteRT, ONNX), and the model card.

May import: classifier.core, classifier.intake, classifier.models.
"""
