"""The library behind the pipeline's stages: everything a stage in stages/ calls, grouped by concern.

Five packages, each importing only those listed before it, so imports point one way
(stage scripts -> concerns -> core):

- core: params.yaml's schema and checks, where files live, the stage entry point, the Keras backend;
- intake: the raw images in any layout, the split, decoding and the prepared arrays;
- models: bases, heads, saving, training;
- evaluation: test metrics, the report, pictures and explanations;
- serving: prediction on new images, export for serving, and the model card.

The `__init__.py` files hold docstrings only: importing a package runs no code, so a module
is a stage's dependency (in dvc.yaml) only where the stage imports it.
"""
