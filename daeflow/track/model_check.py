"""The rules a daeflow model folder must pass, checked by reading it as data only.

Nothing from the folder is imported, unpickled or run: the MLmodel file is read with
YAML's safe loader, the folder is walked without following links, and the `.keras`
archive is listed with `zipfile` (its `config.json` read as JSON). Refused, with the
reason: a pyfunc loader other than daeflow's (or MLflow's Keras loader, where allowed),
a pickled Python model, a `code`, `data` or `model_config` entry (MLflow would put the
model's files on Python's path), an exported TensorFlow SavedModel, flavours daeflow's
models never have, Python code or pickles anywhere in the folder, links or paths that
leave it, archive members a Keras model file does not have, a Lambda layer, unusable
metadata and layer modules outside installed daeflow plugins.

`daeflow.track.flavor.read_model_folder` (for `daeflow denoise`, `evaluate` and
`mlflow.pyfunc.load_model`) applies these rules before it imports any layer module;
`daeflow check-model`, `serve` and `register` apply them with `served=True`, which also
requires daeflow's own pyfunc loader.
"""

import json
import math
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from daeflow.errors import ModelLoadError, one_line
from daeflow.runtime.backend import check_keras_archive

FLAVOR_MODULE = "daeflow.mlflow_flavor"
LOADERS = (FLAVOR_MODULE, "mlflow.keras")
FLAVORS = ("keras", "python_function")
# pyfunc entries with which MLflow would put files of the model on Python's path
PATH_ENTRIES = ("code", "data", "model_config")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".cloudpickle", ".joblib", ".dill")
CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyw", ".pyd", ".so", ".pth")
KERAS_MEMBERS = ("config.json", "metadata.json", "model.weights.h5", "model.weights.npz")
KERAS_ASSETS = "assets"
LAMBDA_NAMES = ("Lambda", "__lambda__")


@dataclass(frozen=True)
class ModelFolder:
    """A checked MLflow model folder: where its .keras file is and what its metadata says."""

    path: Path
    keras_file: Path
    metadata: dict
    loader: str | None = None
    members: tuple[str, ...] = ()  # of the .keras archive

    def summary(self) -> str:
        """One sentence on what was checked, for `daeflow check-model` and `serve`."""
        keras_file = self.keras_file.relative_to(self.path)
        return (
            f"a plain daeflow model: pyfunc loader {self.loader}, {keras_file} "
            f"({', '.join(self.members)}) for Keras's safe mode; no code, no pickles, "
            "nothing outside the folder"
        )


def check_model_folder(path, where: str | None = None, served: bool = False) -> ModelFolder:
    """Check an MLflow model folder as described above; refuse it in one line if it fails.

    `served`: the folder is for MLflow's scoring server or the registry, so its pyfunc
    loader must be daeflow's (MLflow's Keras loader is accepted otherwise).
    """
    path, where = Path(path), where or str(path)
    refuse = f"daeflow refuses the model {where}:"
    mlmodel = path / "MLmodel"
    if not mlmodel.is_file():
        raise ModelLoadError(
            f"{where} holds no MLmodel file. Pass an MLflow model (runs:/<run id>/model, "
            "models:/<name>/<version>, a model folder) or a .keras file."
        )
    _inside(mlmodel, path, refuse, "its MLmodel file")
    conf = _read_mlmodel(mlmodel, where)
    flavors = conf.get("flavors")
    flavors = flavors if isinstance(flavors, dict) else {}
    pyfunc = flavors.get("python_function") or {}
    if not isinstance(pyfunc, dict):
        raise ModelLoadError(f"{refuse} its python_function flavour is not a mapping.")
    if "keras" not in flavors:
        if "python_model" in pyfunc or "cloudpickle_version" in pyfunc:
            raise ModelLoadError(
                f"{refuse} it is a pickled Python model, and daeflow never runs code that "
                "comes with a model. Log the Keras model with daeflow."
            )
        raise ModelLoadError(
            f"{refuse} it has no Keras flavour (flavours: {', '.join(flavors) or 'none'})."
        )
    others = [str(name) for name in flavors if name not in FLAVORS]
    if others:
        raise ModelLoadError(
            f"{refuse} its MLmodel names flavours daeflow's models never have "
            f"({', '.join(others)}), whose loaders would run other code."
        )
    keras_conf = flavors["keras"]
    if not isinstance(keras_conf, dict):
        raise ModelLoadError(f"{refuse} its keras flavour is not a mapping.")
    if keras_conf.get("save_exported_model"):
        raise ModelLoadError(
            f"{refuse} it is an exported TensorFlow SavedModel, whose graph would run when "
            "loaded and which has no safe mode. Log it as a .keras model."
        )
    loader = pyfunc.get("loader_module")
    if served and loader != FLAVOR_MODULE:
        raise ModelLoadError(
            f"{refuse} its pyfunc loader is {loader!r}, not daeflow's ({FLAVOR_MODULE}), so "
            "MLflow would not serve it through daeflow's checks. Log the model with daeflow."
        )
    if pyfunc and loader not in LOADERS:
        raise ModelLoadError(
            f"{refuse} its pyfunc loader is {loader!r}, not daeflow's or MLflow's Keras loader."
        )
    for key in PATH_ENTRIES:
        if pyfunc.get(key):
            raise ModelLoadError(
                f"{refuse} its python_function flavour carries {key!r} "
                f"({pyfunc[key]!r}), which daeflow's models never have and which would put "
                "files of the model on Python's path."
            )
    data = Path(str(keras_conf.get("data", "data")))
    if data.is_absolute():
        raise ModelLoadError(f"{refuse} its Keras data path {str(data)!r} leaves the model folder.")
    folder = path / data
    _inside(folder, path, refuse, f"its Keras data path {str(data)!r}")
    keras_file = folder / "model.keras" if folder.is_dir() else folder.with_suffix(".keras")
    if not keras_file.is_file():
        raise ModelLoadError(f"{refuse} it holds no .keras file ({keras_file.name} is missing).")
    _inside(keras_file, path, refuse, f"its .keras file {keras_file.name!r}")
    _check_files(path, refuse)
    members = _check_keras_archive(keras_file, refuse, where)
    metadata = conf.get("metadata")
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise ModelLoadError(f"{refuse} its metadata is not a mapping.")
    _check_numbers(metadata, refuse)
    check_custom_object_names(metadata, where)
    return ModelFolder(path, keras_file, metadata, loader, members)


def _read_mlmodel(mlmodel: Path, where: str) -> dict:
    """The MLmodel file as plain data: YAML's safe loader builds no Python objects."""
    import yaml

    try:
        conf = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        raise ModelLoadError(
            f"The MLmodel file of {where} cannot be read: {one_line(exc, 300)}."
        ) from None
    if not isinstance(conf, dict):
        raise ModelLoadError(f"The MLmodel file of {where} is not a YAML mapping.")
    return conf


def _inside(target: Path, folder: Path, refuse: str, what: str) -> None:
    """Refuse a path that leads (through '..' or a link) out of the model folder."""
    if not target.resolve().is_relative_to(folder.resolve()):
        raise ModelLoadError(f"{refuse} {what} leaves the model folder.")


def _check_files(path: Path, refuse: str) -> None:
    """Every entry of the folder, links not followed: no code, no pickles, nothing outside."""
    root = path.resolve()
    for parent, folders, files in os.walk(root):  # never descends into linked folders
        for name in sorted(folders + files):
            entry = Path(parent) / name
            relative = entry.relative_to(root).as_posix()
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode):
                _inside(entry, root, refuse, f"the link {relative!r}")
                continue
            if relative == "code":
                raise ModelLoadError(
                    f"{refuse} it holds a 'code' folder, which MLflow puts on Python's path."
                )
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise ModelLoadError(f"{refuse} {relative!r} is not a regular file.")
            lowered = name.lower()
            if lowered.endswith(CODE_SUFFIXES):
                raise ModelLoadError(
                    f"{refuse} it holds Python code ({relative!r}); daeflow's models hold none."
                )
            if lowered.endswith(PICKLE_SUFFIXES) or _starts_like_a_pickle(entry):
                raise ModelLoadError(
                    f"{refuse} it holds a pickle ({relative!r}), which runs code when loaded; "
                    "daeflow's models hold none."
                )


def _starts_like_a_pickle(file: Path) -> bool:
    """Whether a file begins as pickle protocols 2 to 5 do (0x80, then the protocol)."""
    with open(file, "rb") as handle:
        head = handle.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _check_keras_archive(keras_file: Path, refuse: str, where: str) -> tuple[str, ...]:
    """The archive's member names, each one a Keras model file has; no Lambda layer.

    Paths that leave the folder and the size of config.json are checked first, by the
    check Keras files always pass before Keras reads them (runtime.backend)."""
    name = keras_file.name
    check_keras_archive(keras_file, where)
    try:
        with zipfile.ZipFile(keras_file) as archive:
            members = archive.namelist()
            text = archive.read("config.json")
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ModelLoadError(
            f"{refuse} its .keras file {name!r} is not a valid zip archive ({exc})."
        ) from None
    for member in members:
        parts = PurePosixPath(member).parts
        if member not in KERAS_MEMBERS and parts[0] != KERAS_ASSETS:
            raise ModelLoadError(
                f"{refuse} {name!r} holds {member!r}, which a Keras model file does not."
            )
    try:
        layers = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ModelLoadError(f"{refuse} the config.json of {name!r} is not JSON.") from None
    if _has_lambda(layers):
        raise ModelLoadError(
            f"{refuse} {name!r} holds a Lambda layer with Python code, which daeflow never "
            "runs (Keras's safe mode refuses it). Rebuild it from registered layers."
        )
    return tuple(sorted(members))


def _has_lambda(config) -> bool:
    """Whether a Keras config holds a Lambda layer or a serialized Python function."""
    pending = [config]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("class_name") in LAMBDA_NAMES:
                return True
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return False


def _check_numbers(metadata: dict, refuse: str) -> None:
    """The data range, size multiple and tile margin a model declares must be usable numbers."""
    data_range = metadata.get("data_range")
    if data_range is not None and not (
        isinstance(data_range, int | float)
        and not isinstance(data_range, bool)
        and math.isfinite(data_range)
        and data_range > 0
    ):
        raise ModelLoadError(f"{refuse} its data_range {data_range!r} is not a positive number.")
    multiple = metadata.get("size_multiple")
    if multiple is not None and not (
        isinstance(multiple, int) and not isinstance(multiple, bool) and 1 <= multiple <= 4096
    ):
        raise ModelLoadError(f"{refuse} its size_multiple {multiple!r} is not an int >= 1.")
    margin = metadata.get("tile_margin")
    if margin is not None and not (
        isinstance(margin, int) and not isinstance(margin, bool) and 0 <= margin <= 65536
    ):
        raise ModelLoadError(f"{refuse} its tile_margin {margin!r} is not an int >= 0.")


def not_plugin_modules(modules: list[str]) -> list[str]:
    """The modules that daeflow would not import for a model (see below)."""
    from daeflow.plugin.manager import plugin_module_prefixes

    prefixes = plugin_module_prefixes() if modules else set()
    refused = []
    for module in modules:
        parts = module.split(".")
        dunder = any(p.startswith("__") for p in parts)
        allowed = any(module == p or module.startswith(p + ".") for p in prefixes)
        if dunder or not all(p.isidentifier() for p in parts) or not allowed:
            refused.append(module)
    return refused


def check_custom_object_names(metadata: dict, where: str) -> list[str]:
    """The layer modules the model names, each of an installed daeflow plugin (or of
    daeflow's architectures); nothing is imported here.

    A module is allowed when it lies in a package of a distribution with an entry point in
    the group 'daeflow', or under daeflow.architectures; never a __main__ or other dunder.
    """
    refuse = f"daeflow refuses the model {where}:"
    modules = metadata.get("custom_object_modules") or []
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise ModelLoadError(f"{refuse} custom_object_modules must be a list of module names.")
    for module in not_plugin_modules(modules):
        raise ModelLoadError(
            f"{refuse} it asks to import {module!r}, which is not a module of an installed "
            f"daeflow plugin (entry-point group 'daeflow'). {plugin_hint(metadata)}"
        )
    return modules


def plugin_hint(metadata: dict) -> str:
    """What to install, as the model names it, if the name is a plausible distribution name."""
    name = metadata.get("plugin_distribution")
    plausible = isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name)
    if plausible and name != "daeflow":
        return (
            f"The model names its plugin {name!r}: install it if you trust it (pip install {name})."
        )
    return "Install the daeflow plugin that made the model."


def checked_model(
    uri: str, into: Path, copy_local: bool = False, where: str | None = None
) -> ModelFolder:
    """The model at `uri`, checked with `served=True`.

    runs:/ and models:/ URIs are downloaded into the new folder `into` (MLflow's download
    copies files and runs nothing) and the copy is checked. A local folder is checked where
    it is; with `copy_local` it is then copied into `into` (links kept as links) and the
    copy checked again, so that the folder checked is the folder used. `where` names the
    model in messages (default: `uri`).
    """
    path, where = Path(uri), where or uri
    if path.is_dir():
        checked = check_model_folder(path, where, served=True)
        if not copy_local:
            return checked
        import shutil

        shutil.copytree(path, into, symlinks=True)
        return check_model_folder(into, where, served=True)
    if path.exists():
        raise ModelLoadError(
            f"{uri} is a file, not an MLflow model folder. Pass runs:/<run id>/model, "
            "models:/<name>@<alias>, models:/<name>/<version> or a model folder."
        )
    if "://" not in uri and not uri.startswith(("models:/", "runs:/")):
        raise ModelLoadError(
            f"Model not found: {uri}. Pass runs:/<run id>/model, models:/<name>@<alias> "
            "or a local model folder."
        )
    from daeflow.track.queries import local_model_path

    into.mkdir(parents=True)
    return check_model_folder(local_model_path(uri, into), where, served=True)
