"""`make own` (`classifier own`) changes nothing until every check has passed, runs one at a time, and stops
whole. Each refusal is one line, and the repository is compared before and after it: every file but git's
own (the workspace, bases/, DVC's cache and .dvc/tmp) and `git status`.

The photos, as stage split reads them, before anything changes:
1. an empty folder; one class; one image per class (no validation or test image of it); an image beside
   the class folders; the same photo in train/ and test/ (a leak); classes that differ only in letter case
                                                         -> split's own one line, nothing changed
The base file, as load_base loads it, before it is copied into bases/ or DVC's cache:
2. a file that is not a Keras model; a .keras file cut short; a Lambda layer (code safe mode will not
   run); a model with no convolutional feature map; base.fine_tune_from naming a layer it does not have
                                                         -> load_base's one line, nothing changed
bases/ is never silently replaced:
3. a base file under a name bases/ holds with other content (the file there, or only its .dvc: not checked
   out)                                                  -> refused, naming the fix (another name)
4. the same base file again                              -> used as it is: bases/ and its .dvc unchanged
One run at a time, and signals that reach everything (DVC replaced by a stand-in: a process group that
ignores SIGINT as DVC does while its stage runs, and a stage that says it was interrupted):
5. a second `classifier own` while one runs              -> refused at once, naming the first; nothing changed
6. SIGTERM or SIGINT to `classifier own` while `dvc exp run` runs, or SIGTERM to `make own` (which passes it
   on to own)                                            -> passed on to DVC's process group, the stage's
                                                            interrupted line, own's one line, exit 143 or 130,
                                                            no process of the run left
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import pytest

from classifier.commands import own
from classifier.models import saving
from tests.support.commands import command_error, in_repository, run_command, users_environment
from tests.support.files import png, write_files
from tests.support.models import conv_base
from tests.support.repos import OWN_RECIPE, OWN_RECIPE_TEXT, own_photos, own_repo, workspace_state
from tests.support.stages import process_gone, wait_for

NAMED_LAYER = "named-layer"  # a recipe whose base.fine_tune_from names block5_conv1 (VGG16's)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = own_repo(tmp_path_factory.mktemp("own") / "repo")
    recipe = OWN_RECIPE_TEXT.replace("fine_tune_from: null", "fine_tune_from: block5_conv1")
    (repo.path / "recipes" / f"{NAMED_LAYER}.yaml").write_text(recipe)
    repo.commit("a recipe naming a layer")
    return repo


@pytest.fixture
def here(repo, monkeypatch):
    """`classifier own` in this process works on the scratch repository; what it would run fails the test."""
    in_repository(monkeypatch, repo.path)
    monkeypatch.setattr(own, "run_dvc", lambda command, stops: pytest.fail(f"ran {command}"))
    return repo


def refused(repo, *arguments: str) -> str:
    """own's one line for `arguments`, once it is checked that the repository is as it was."""
    before = workspace_state(repo.path)
    message = command_error(["own", *arguments])
    assert workspace_state(repo.path) == before
    return message


# --- 1: the photos --------------------------------------------------------------------------------------------

TWELVE_CATS = {f"cat/{index}.png": png(index) for index in range(12)}
TWELVE_DOGS = {f"dog/{index}.png": png(100 + index) for index in range(12)}
SPLIT_FOLDERS = {
    f"{split}/{name}/{index}.png": png(1000 * number + 100 * position + index)
    for number, split in enumerate(("train", "validation", "test"))
    for position, name in enumerate(("cat", "dog"))
    for index in range(3)
}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "data.raw_dir '{data}': it holds no images and no .npy arrays"),
        (TWELVE_CATS, "data.raw_dir holds 1 class (cat); a classifier needs at least 2"),
        (
            {"cat/0.png": png(1), "dog/0.png": png(2)},
            "class 'cat' has too few images for a train, validation and test split",
        ),
        ({**TWELVE_CATS, **TWELVE_DOGS, "loose.png": png(500)}, "{data}/loose.png is in no class folder"),
        (
            {**SPLIT_FOLDERS, "test/cat/copy.png": png(0)},
            "1 image is in more than one split (train/cat/0.png (train) = test/cat/copy.png (test))",
        ),
        (
            {**TWELVE_CATS, **{f"Cat/{index}.png": png(100 + index) for index in range(12)}},
            "the classes 'Cat' and 'cat' differ only in letter case",
        ),
    ],
    ids=["empty", "one class", "one image a class", "an image beside", "a leak", "letter case"],
)
def test_photos_split_would_refuse_are_refused_before_anything_changes(here, tmp_path, files, message):
    photos = write_files(tmp_path / "photos", files)
    photos.mkdir(exist_ok=True)
    line = refused(here, f"--recipe={OWN_RECIPE}", "--", str(photos))
    data = os.path.relpath(photos, here.path)
    assert line.startswith(f"own: error: {message.format(data=data)}"), line


# --- 2: the base file -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_bases(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bases")
    (folder / "text.keras").write_text("This is a README, not a model.\n")
    saving.save_model(conv_base(), folder / "good.keras")
    whole = (folder / "good.keras").read_bytes()
    (folder / "cut.keras").write_bytes(whole[: len(whole) // 2])
    pixels = keras.Input((None, None, 3))
    doubled = keras.layers.Lambda(lambda v: v * 2, name="doubled")(pixels)
    keras.Model(pixels, keras.layers.Conv2D(4, 3, name="conv")(doubled)).save(folder / "lambda.keras")
    dense_pixels = keras.Input((8, 8, 3))
    dense = keras.layers.Dense(2)(keras.layers.Flatten()(dense_pixels))
    keras.Model(dense_pixels, dense).save(folder / "dense.keras")
    return {path.stem: path for path in folder.iterdir()}


@pytest.mark.parametrize(
    ("name", "recipe", "problem"),
    [
        ("text", OWN_RECIPE, "is not a Keras model file (a .keras file is a zip archive)"),
        ("cut", OWN_RECIPE, "is a damaged zip archive, not a complete Keras model file (cut short?)"),
        ("lambda", OWN_RECIPE, "holds a Lambda layer (Python code that safe mode will not run)"),
        ("dense", OWN_RECIPE, "has no convolutional feature map"),
        ("good", NAMED_LAYER, None),
    ],
)
def test_a_base_load_base_would_refuse_is_refused_before_it_is_copied(here, tmp_path, bad_bases, name, recipe, problem):
    photos = own_photos(tmp_path / "photos")
    line = refused(here, f"--base={bad_bases[name]}", f"--recipe={recipe}", "--", str(photos))
    if problem is None:  # a good base, but not for this recipe
        assert line.startswith("own: error: base.fine_tune_from 'block5_conv1' is not a layer of the base"), line
    else:
        assert line.startswith(f"own: error: base.name '{bad_bases[name]}' {problem}"), line
    assert not (here.path / "bases" / bad_bases[name].name).exists()


# --- 3-4: bases/ ----------------------------------------------------------------------------------------------


@pytest.fixture
def other_base(tmp_path) -> Path:
    """A valid base, another model than bases/my_base.keras will hold, under the same file name."""
    path = tmp_path / "mine" / "my_base.keras"
    path.parent.mkdir()
    saving.save_model(conv_base("another"), path)
    return path


def test_a_base_named_as_one_in_bases_with_other_content_is_refused(here, tmp_path, other_base):
    photos = own_photos(tmp_path / "photos")
    (here.path / "bases" / "my_base.keras").write_bytes(b"the model earlier experiments used")
    try:
        line = refused(here, f"--base={other_base}", f"--recipe={OWN_RECIPE}", "--", str(photos))
    finally:
        (here.path / "bases" / "my_base.keras").unlink()
    renamed = other_base.with_name("my_base-2.keras")
    assert line == (
        f"own: error: BASE={other_base}: bases/my_base.keras holds another model already (experiments that used "
        f"it name it in base.name); give this one a name of its own: cp {other_base} {renamed}, then BASE={renamed}"
    )


def test_a_base_named_as_a_tracked_one_not_checked_out_is_compared_with_its_dvc_file(here, tmp_path, other_base):
    photos = own_photos(tmp_path / "photos")
    tracked = here.path / "bases" / "my_base.keras.dvc"
    tracked.write_text("outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 5\n  path: my_base.keras\n")
    try:
        line = refused(here, f"--base={other_base}", f"--recipe={OWN_RECIPE}", "--", str(photos))
        assert line.startswith(f"own: error: BASE={other_base}: bases/my_base.keras holds another model already")
        md5 = hashlib.md5(other_base.read_bytes()).hexdigest()
        tracked.write_text(f"outs:\n- md5: {md5}\n  size: 5\n  path: my_base.keras\n")
        assert own.base_to_copy(other_base, str(other_base)) is False  # the same model: nothing to copy
    finally:
        tracked.unlink()


def test_the_same_base_again_is_used_as_it_is(here, tmp_path, other_base, monkeypatch):
    photos = own_photos(tmp_path / "photos")
    kept = here.path / "bases" / "my_base.keras"
    kept.write_bytes(other_base.read_bytes())
    (here.path / "bases" / "my_base.keras.dvc").write_text("outs:\n- path: my_base.keras\n")
    kept_state = {path.name: path.stat().st_mtime_ns for path in kept.parent.iterdir()}
    monkeypatch.setattr(own, "run_dvc", lambda command, stops: 0)
    monkeypatch.setattr(own, "print_results", lambda: None)
    try:
        assert run_command(["own", f"--base={other_base}", f"--recipe={OWN_RECIPE}", "--", str(photos)]) == 0
        assert {path.name: path.stat().st_mtime_ns for path in kept.parent.iterdir()} == kept_state
    finally:
        here.run("git", "reset", "-q", "--hard")
        here.run("git", "clean", "-fdxq", "bases")


# --- 5-6: one run at a time, and signals ------------------------------------------------------------------------

# DVC's stand-in: `python -m dvc exp run` runs a stage in its process group and ignores SIGINT while it runs,
# as DVC does; the stage says it was interrupted on SIGINT, as every stage does, once it is ready for it.
FAKE_DVC = textwrap.dedent("""
    import signal, subprocess, sys
    STAGE = '''
    import os, signal, sys, time
    from pathlib import Path
    def stop(signum, frame):
        print("train_classifier: interrupted; nothing of this run is recorded as done", file=sys.stderr, flush=True)
        sys.exit(130)
    signal.signal(signal.SIGINT, stop)
    Path(sys.argv[1]).write_text(f"{os.getppid()} {os.getpid()}")
    time.sleep(120)
    '''
    assert sys.argv[1:] == ["exp", "run"], sys.argv
    stage = subprocess.Popen([sys.executable, "-c", STAGE, sys.argv[0] + ".pids"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if stage.wait():
        print("ERROR: failed to reproduce 'train_classifier': exit code 130", file=sys.stderr, flush=True)
        sys.exit(255)
""")


@pytest.fixture
def running(repo, tmp_path):
    """Start `classifier own` in the scratch repository, DVC replaced by the stand-in: (the process, the
    stand-in's pids file) once its stage is ready; the repository is put back after the test."""
    fake = tmp_path / "fake"
    (fake / "dvc").mkdir(parents=True)
    (fake / "dvc" / "__init__.py").write_text("")
    (fake / "dvc" / "__main__.py").write_text(FAKE_DVC)
    pids = fake / "dvc" / "__main__.py.pids"
    photos = own_photos(tmp_path / "photos")
    env = users_environment(PYTHONPATH=str(fake), TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "classifier", "own", f"--recipe={OWN_RECIPE}", "--", str(photos)]
    venv = Path(sys.executable).parent.parent  # nothing installed: make is told this venv is up to date
    make = ["make", "-s", "-o", f"{venv}/installed", "own", f"VENV={venv}", f"DATA={photos}", f"RECIPE={OWN_RECIPE}"]
    started = []

    def start(through_make: bool = False) -> subprocess.Popen:
        chosen = make if through_make else command
        process = subprocess.Popen(chosen, cwd=repo.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(process)
        wait_for(lambda: pids.is_file() and pids.read_text() or process.poll() is not None, seconds=60)
        assert process.poll() is None, process.communicate()
        return process

    yield start, pids, (command, env)
    for process in started:
        if process.poll() is None:
            process.terminate()  # own stops its DVC's group, as tested below
            process.communicate(timeout=60)
    for pid in map(int, pids.read_text().split() if pids.is_file() else []):
        if not process_gone(pid):
            os.kill(pid, signal.SIGKILL)
    repo.run("git", "reset", "-q", "--hard")


def test_a_second_run_while_one_runs_is_refused_at_once_naming_the_first(repo, running):
    start, _, (command, env) = running
    first = start()
    before = workspace_state(repo.path)
    second = subprocess.run(command, cwd=repo.path, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 1 and second.stdout == ""
    lines = second.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"own: error: another `make own` is running in this workspace (process {first.pid}, since "
    ), second.stderr
    assert lines[0].endswith(
        f"RECIPE={OWN_RECIPE}); two at once would change params.yaml under each other: wait for it to end, or "
        f"stop it: kill {first.pid}"
    )
    assert workspace_state(repo.path) == before


@pytest.mark.parametrize(
    ("signum", "through_make"),
    [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)],
    ids=["SIGTERM to own", "SIGINT to own", "SIGTERM to make own"],
)
def test_a_signal_to_own_stops_dvc_and_its_stage_and_exits_with_one_line(running, signum, through_make):
    start, pids, _ = running
    process = start(through_make)
    dvc, stage = map(int, pids.read_text().split())
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    lines = [line for line in stderr.decode().splitlines() if not line.startswith("make: ***")]
    assert process.returncode == (-signum if through_make else 128 + signum), stderr  # make dies of the signal
    assert lines == [
        "train_classifier: interrupted; nothing of this run is recorded as done",
        f"own: interrupted ({signal.Signals(signum).name}): dvc exp run is stopped and saved no experiment; run it "
        "again to go on (finished stages are not rerun)",
    ], stderr
    assert process_gone(dvc) and process_gone(stage)
