"""How close each stage runs to what this machine can do, as ratios (`make bench`).

    python -m benchmarks                    # the full run (about 20 minutes on 2 cores)
    python -m benchmarks --quick            # smaller sets: a smoke test of the benchmark itself
    python -m benchmarks --only backends    # one part (repeatable): throughput, dvc, memory, backends, scale

Every row compares the stage's own code path with a reference on the same images, in
the same process and on the same cores, and prints ours / reference as a speed ratio
(higher is better) beside its target:

- prepare: decode + resize on all cores vs a plain single-process PIL loop;
- extract_features: the stage's batches from a memory map vs `predict` on the same
  images already in memory as one float32 array (the limit);
- train_frozen (a): the stage's input pipeline + augmentation + train step vs the train
  step alone on tensors in memory, no augmentation (the limit);
- train_frozen (b): the same vs `keras.utils.image_dataset_from_directory`, which decodes
  the JPEGs again every epoch, with the same augmentation layers;
- dvc: `dvc status` vs `dvc repro` with nothing to do, on a finished pipeline;
- memory: peak resident memory of the real `prepare` and `extract_features` stages on a
  small and on a large generated set (25,000 images, Kaggle's whole training set);
- backends: extract_features, train_frozen and fine_tune on each installed Keras backend
  (TensorFlow, JAX, PyTorch), each in its own process, against TensorFlow (for information);
- scale: prepare, extract_features and one epoch of train_classifier on 10,000 and 100,000
  generated 32x32 images (time per image and peak memory at both), and the bytes `dvc push` and
  `dvc pull` move after 1% more images (docs/scale.md).

Images: the real Kaggle images in ../shared when present, generated ones otherwise.
Base: the EfficientNet-Lite0 in ../shared/models when present, else MobileNetV2 with
random weights (the same amount of work as with ImageNet's).

Modules: harness (rows, timing, the table), images, throughput, dvc_noop, memory, backends
(+ backend_worker, one backend's measurements in its own process), scale, __main__ (the command).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
