"""`classifier recipe`: apply a recipe to params.yaml, or print it as `dvc exp run` arguments.

A recipe, recipes/<name>.yaml, holds params overrides: only the keys it changes, nested as in
params.yaml. `book` names every key the others change (all but where the images are,
data.raw_dir), so applying it undoes any of them.

    classifier recipe laptop         # params.yaml takes laptop's values, comments kept
    classifier recipe laptop --set   # prints -S key=value arguments: `dvc exp run $(...)`
    classifier recipe --list

The merged params are checked as every stage checks them before params.yaml changes: a key
params.yaml does not have, or a bad value, is named in one line and nothing is written. With
--set the arguments hold book's keys first, then the recipe's, so that the run is the same
whatever params.yaml holds. Undo an applied recipe with `git checkout params.yaml`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import tempfile
from pathlib import Path

import yaml
from ruamel.yaml import YAML

from classifier.core.errors import ParamsError
from classifier.core.params import PARAMS_FILE, as_model, load_params
from classifier.core.paths import PROJECT_ROOT
from classifier.core.schema import Params, Section
from classifier.core.yaml_files import read_yaml
from classifier.intake.escaping import terminal_text

RECIPES_DIR = PROJECT_ROOT / "recipes"
BOOK = "book"
NULL = "tag:yaml.org,2002:null"


def recipe_names() -> list[str]:
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml") if not path.name.startswith("."))


def load_recipe(name: str) -> dict:
    """Recipe `name`: a name in recipes/ (never a path: `../params`, `/etc/x` are not names there), read
    as every YAML a user gives is (classifier.core.yaml_files.read_yaml: an alias bomb is refused in one line)."""
    names = recipe_names()
    if name not in names:
        choose, shown = f"choose one of {', '.join(names)}", terminal_text(name)  # as typed, where printable
        if any(mark in name for mark in ("/", "\\")) or name.startswith(".") or name.endswith(".yaml"):
            raise ParamsError(
                f"recipe '{shown}' is not a name of {RECIPES_DIR.name}/: a recipe is named by its file's name there, "
                f"without .yaml (never a path); {choose}"
            )
        raise ParamsError(f"no recipe '{shown}' in {RECIPES_DIR.name}/: {choose}")
    recipe = read_yaml(RECIPES_DIR / f"{name}.yaml", f"{RECIPES_DIR.name}/{name}.yaml")
    if not isinstance(recipe, dict) or not recipe:
        raise ParamsError(
            f"{RECIPES_DIR.name}/{name}.yaml holds no params: write the keys it changes, nested as in params.yaml"
        )
    return recipe


def leaves(mapping: dict, prefix: str = "", section: type[Section] | None = Params) -> dict[str, object]:
    """{"a.b": value} for every value of a nested mapping that is not itself a section of params (a mapping
    that is a value, such as data.class_groups, is one value); keys the schema lacks are opened as sections."""
    flat = {}
    for key, value in mapping.items():
        field = section.model_fields.get(key) if section is not None else None
        inner = as_model(field.annotation) if field is not None else None
        if isinstance(value, dict) and value and (field is None or inner is not None):
            flat.update(leaves(value, f"{prefix}{key}.", inner))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def merged(params, overrides: dict[str, object], source: str, round_trip: YAML) -> None:
    """Set each dotted key of `overrides` in the round-trip mapping `params`: the values that differ,
    written as a YAML reader would give them back (floats as 1.0e-05, lists on one line)."""
    for dotted, value in overrides.items():
        *sections, key = dotted.split(".")
        place = params
        for section in sections:
            if not isinstance(place.get(section), dict):
                raise ParamsError(f"{source}: {dotted} is not a params.yaml key (no section {section!r} there)")
            place = place[section]
        if key not in place:
            raise ParamsError(f"{source}: {dotted} is not a params.yaml key: see params.yaml for the keys")
        if place[key] != value:
            place[key] = round_trip.load(flow_yaml(value))


def apply(name: str, params_file: Path = PARAMS_FILE) -> list[str]:
    """Write recipe `name` into params_file once the result passes the params check; the keys changed."""
    return write_overrides(leaves(load_recipe(name)), params_file, f"recipes/{name}.yaml")[0]


def write_overrides(overrides: dict[str, object], params_file: Path, source: str, check_only: bool = False):
    """Set the dotted keys of `overrides` in params_file if the result passes the params check (with
    check_only, only check it); the keys whose value changes, and the checked params."""
    round_trip = YAML()
    round_trip.preserve_quotes = True
    round_trip.width = 4096  # long comments stay on their line
    round_trip.representer.add_representer(type(None), lambda dumper, _: dumper.represent_scalar(NULL, "null"))
    read_yaml(params_file, PARAMS_FILE.name)  # valid YAML of a sane size: an alias bomb is refused, not expanded
    params = round_trip.load(params_file.read_text(encoding="utf-8"))
    before = leaves(json.loads(json.dumps(params)))
    merged(params, overrides, source, round_trip)
    text = io.StringIO()
    round_trip.dump(params, text)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=params_file.parent, delete=False) as checked:
        checked.write(text.getvalue())
    try:
        checked_params = load_params(checked.name)
    except ParamsError as err:
        Path(checked.name).unlink()
        raise ParamsError(f"{source}: {err}") from None
    if check_only:
        Path(checked.name).unlink()
    else:
        Path(checked.name).replace(params_file)
    return [key for key, value in overrides.items() if before.get(key) != value], checked_params


def set_arguments(name: str) -> list[str]:
    """`-S key=value` for book's keys, then recipe `name`'s, each value written for DVC's override grammar
    (Hydra's) so that it reaches params.yaml as it is (`override_value`)."""
    overrides = leaves(load_recipe(BOOK)) | leaves(load_recipe(name))
    return [
        argument
        for key, value in overrides.items()
        for argument in ("-S", f"{key}={override_value(value, f'recipes/{name}.yaml: {key}')}")
    ]


# Where a quoted value of Hydra's grammar needs a backslash: before a quote, at its end, and before `${`
# (which DVC would otherwise resolve as an interpolation, through OmegaConf); a run of backslashes there
# is doubled.
GRAMMAR_ESCAPES = re.compile(r"(\\*)('|\$\{|\Z)")


def override_value(value: object, where: str) -> str:
    """`value` in DVC's override grammar (`dvc exp run -S key=<this>`), read back as the same value whatever
    it holds: a string is always quoted (so `null`, `1e5`, `a,b`, `фото`, `it's` stay strings as they are),
    numbers, booleans and null as YAML has them, lists and mappings of these in brackets. A mapping key
    the grammar cannot hold (anything but letters, digits and _-) is refused in one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return flow_yaml(value)
    if isinstance(value, str):
        escaped = GRAMMAR_ESCAPES.sub(lambda m: m[1] * 2 + ("\\" + m[2] if m[2] else ""), value)
        return f"'{escaped}'"
    if isinstance(value, list):
        return "[" + ",".join(override_value(item, where) for item in value) + "]"
    if isinstance(value, dict):
        for key in value:
            if not re.fullmatch(r"[A-Za-z_][\w-]*", str(key)):
                raise ParamsError(
                    f"{where}: the key {key!r} cannot be given to dvc exp run -S (its grammar takes letters, digits, "
                    f"_ and - in a key); apply the recipe to params.yaml instead (classifier recipe NAME)"
                )
        return "{" + ",".join(f"{key}:{override_value(item, where)}" for key, item in value.items()) + "}"
    raise ParamsError(f"{where}: {value!r} is not a params value (a string, number, boolean, null, list or mapping)")


def flow_yaml(value: object) -> str:
    """One-line YAML that every YAML reader takes alike: 1e-05 would be a string to PyYAML, 1.0e-5 is not."""
    if isinstance(value, float) and "e" in repr(value):
        mantissa, exponent = repr(value).split("e")
        return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{int(exponent):+d}"
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n").removesuffix("\n...")


def run(args: argparse.Namespace) -> None:
    os.chdir(PROJECT_ROOT)  # params.yaml and the paths it names are the repository's
    if args.list or not args.name:
        print("\n".join(recipe_names()))
        return
    if args.set:
        print(" ".join(shlex.quote(argument) for argument in set_arguments(args.name)))
        return
    changed = apply(args.name)
    print(f"recipe: {args.name}: {len(changed)} keys of {PARAMS_FILE} changed ({', '.join(changed) or 'none'})")
    print("recipe: undo with `git checkout params.yaml`; run it with `dvc exp run`")
