"""Resolve a model source to a checked model folder: a local folder, or a Hub repo ``owner/name[@revision]``.

Hub repos go through huggingface_hub's own download and cache (``HF_HOME``,
``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, ``HF_TOKEN`` or a saved login for private repos),
bounded by ``$AUTOSPECNET_HUB_TIMEOUT`` seconds (default 30) so that a Hub that never
answers cannot hang a page or a script. Only ``config.json``, ``model.safetensors``,
``model.onnx`` and other JSON/Markdown/CSV files are fetched and read: nothing is unpickled.

Everything in a folder comes from outside and is checked when it loads: the config's
values (``autospecnet.config``), the weights (readable, finite, shaped as the config says)
and, for the ONNX Runtime backend, the graph's inputs and outputs and a first run. Each
failure is its own ``ModelLoadError`` subclass with a message fit for a user. No torch is
imported here: ``LoadedModel.model`` imports it when the torch network is asked for.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autospecnet.backends import BACKENDS, ONNX_FILE, BackendError, OnnxBackend, TorchBackend, default_backend
from autospecnet.config import CONFIG_FILE, ConfigError, ModelConfig
from autospecnet.heads import ATTRIBUTE_HEADS, FEATURE_DIM, HEAD_LAYERS
from autospecnet.records.test_metrics import PartMetrics
from autospecnet.settings import HUB_TIMEOUT_ENV, MODEL_ENV
from autospecnet.sure import STATS_FILE

DEFAULT_HUB_TIMEOUT_S = 30.0
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
BUNDLED_MODEL_DIR = ASSETS_DIR / "model"
WEIGHTS_FILE = "model.safetensors"
HUB_FILES = ["*.json", "*.safetensors", "*.onnx", "*.md", "*.csv"]  # sure.safetensors too
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_REVISION = re.compile(r"^[\w][\w.\-/]{0,199}$")


class ModelLoadError(RuntimeError):
    """The model could not be loaded; ``str(error)`` says why, for a user."""


class HubUnreachableError(ModelLoadError):
    """The Hub could not be reached (offline, no network, no answer in time) and the model is not in the cache."""


class ModelNotFoundError(ModelLoadError):
    """No such folder, repo or revision (or a private repo without a valid token)."""


class ModelFilesError(ModelLoadError):
    """A file is missing, unreadable, absurd or not what an AutoSpecNet model folder holds."""


class ModelConfigMismatchError(ModelLoadError):
    """config.json and model.safetensors do not describe the same network."""


@dataclass(frozen=True)
class LoadedModel:
    source: str  # as given: a folder or "owner/name@rev"
    kind: str  # "local" or "hub"
    folder: Path  # where the files are on disk (the Hub cache's snapshot for hub sources)
    revision: str | None  # the commit the Hub resolved, for hub sources
    config: ModelConfig
    label: str  # how messages name this model

    @functools.cached_property
    def model(self):
        """The torch network (``AutoSpecNet``, eval mode) from model.safetensors; imports torch."""
        from safetensors import SafetensorError

        from autospecnet.labels import LabelError
        from autospecnet.model import AutoSpecNet

        try:
            return AutoSpecNet.from_pretrained(self.folder)
        except (TypeError, LabelError) as error:
            raise ModelFilesError(
                f"The config.json of {self.label} is not a valid AutoSpecNet config ({error})."
            ) from None
        except SafetensorError as error:
            raise ModelFilesError(f"The {WEIGHTS_FILE} of {self.label} is corrupt ({error}).") from None
        except RuntimeError as error:  # load_state_dict: missing/unexpected keys, shape mismatches
            detail = " ".join(line.strip() for line in str(error).strip().splitlines()[:3])
            raise ModelConfigMismatchError(
                f"The weights of {self.label} do not match its config.json: {detail[:400]}"
            ) from None

    @functools.cached_property
    def sure_stats(self) -> dict[str, np.ndarray]:
        """What the "sure" rule's feature score compares with (``sure.safetensors``); empty when it needs none."""
        rule = self.config.sure
        return _read_sure_stats(self.folder, self.config, self.label) if rule and rule.needs_stats else {}

    def backend(self, name: str | None = None, device: str = "cpu"):
        """The network on ``name`` ("onnxruntime" or "torch"; default: ONNX Runtime when model.onnx is there)."""
        name = name or default_backend(self.folder)
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
        if name == "torch":
            return TorchBackend(self.model, device=device)
        if not (self.folder / ONNX_FILE).is_file():
            raise ModelFilesError(f"The model {self.label} has no {ONNX_FILE} for the onnxruntime backend.")
        try:
            backend = OnnxBackend(self.folder / ONNX_FILE, self.config)
        except BackendError as error:
            raise ModelFilesError(f"The model {self.label}: {error}.") from None
        _check_outputs(backend, self.config, self.label)
        needed = self.config.sure.outputs_needed if self.config.sure else ()
        missing = [name for name in needed if name not in backend.extras]
        if missing:
            raise ModelFilesError(
                f"The {ONNX_FILE} of {self.label} lacks the outputs its sure rule reads ({', '.join(missing)}): "
                "export it again with python -m training.onnx_export."
            )
        return backend

    @property
    def test_metrics(self) -> PartMetrics | None:
        """The model's per-head test metrics, if its folder has a readable ``test_metrics.json`` of this layout."""
        return PartMetrics.read(self.folder)

    @property
    def is_bundled(self) -> bool:
        """Whether this is the model that comes with the app (whose gallery and experiments are bundled too)."""
        return self.folder.resolve() == BUNDLED_MODEL_DIR.resolve()


def default_source() -> str:
    return os.environ.get(MODEL_ENV) or str(BUNDLED_MODEL_DIR)


def parse_hub_source(source: str) -> tuple[str, str | None]:
    """``owner/name@rev`` -> (``owner/name``, ``rev``); ``rev`` is None when absent."""
    repo_id, _, revision = source.partition("@")
    return repo_id, revision or None


def _looks_local(source: str) -> bool:
    return (
        source.startswith((".", "/", "~", "\\"))
        or os.path.isabs(source)
        or not _REPO_ID.match(parse_hub_source(source)[0])
    )


def load_model(source: str | os.PathLike | None = None, label: str | None = None) -> LoadedModel:
    """Resolve and check a model source. ``label`` names it in messages (default: the source itself)."""
    source = str(source) if source is not None else default_source()
    label = label or source
    path = Path(source).expanduser()
    if path.exists() or _looks_local(source):
        if not path.is_dir():
            raise ModelNotFoundError(f"No model folder at {label}.")
        return LoadedModel(source, "local", path, None, _check_folder(path, label), label)
    repo_id, revision = parse_hub_source(source)
    if revision is not None and (not _REVISION.match(revision) or ".." in revision):
        raise ModelNotFoundError(f"{revision!r} is not a valid revision (a branch, tag or commit).")
    folder = Path(_download_with_deadline(repo_id, revision))
    return LoadedModel(source, "hub", folder, folder.name, _check_folder(folder, label), label)


def hub_timeout() -> float:
    try:
        return max(1.0, float(os.environ.get(HUB_TIMEOUT_ENV, DEFAULT_HUB_TIMEOUT_S)))
    except ValueError:
        return DEFAULT_HUB_TIMEOUT_S


def _download_with_deadline(repo_id: str, revision: str | None) -> str:
    """huggingface_hub's download in a daemon thread, abandoned after ``hub_timeout()`` seconds: its
    HTTP client has no read timeout of its own, and a server that accepts and never answers would hang us."""
    result: dict = {}

    def download():
        try:
            result["folder"] = _download(repo_id, revision)
        except BaseException as error:  # handed to the caller's thread
            result["error"] = error

    worker = threading.Thread(target=download, name=f"hub-download-{repo_id}", daemon=True)
    worker.start()
    timeout = hub_timeout()
    worker.join(timeout)
    if worker.is_alive():
        from huggingface_hub import constants

        raise HubUnreachableError(
            f"The Hugging Face Hub ({constants.ENDPOINT}) did not answer within {timeout:.0f} s for {repo_id}."
        )
    if "error" in result:
        raise result["error"]
    return result["folder"]


def _download(repo_id: str, revision: str | None) -> str:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}" + (f" at revision {revision!r}" if revision else "")
    try:
        return snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILES, etag_timeout=hub_timeout())
    except RevisionNotFoundError:
        raise ModelNotFoundError(f"The Hugging Face Hub repo {repo_id} has no revision {revision!r}.") from None
    except GatedRepoError:
        raise ModelNotFoundError(
            f"The Hugging Face Hub repo {repo_id} is gated: accept its terms and set HF_TOKEN."
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"No model repo {repo_id} on the Hugging Face Hub (or it is private: set HF_TOKEN)."
        ) from None
    except HFValidationError as error:
        raise ModelNotFoundError(f"{repo_id!r} is not a valid Hub repo id ({error}).") from None
    except LocalEntryNotFoundError:
        if constants.HF_HUB_OFFLINE:
            raise HubUnreachableError(
                f"HF_HUB_OFFLINE is set and {where} is not in the local Hugging Face cache."
            ) from None
        raise HubUnreachableError(
            f"Cannot reach the Hugging Face Hub ({constants.ENDPOINT}) to fetch {where}, and it is not in the "
            "local cache."
        ) from None
    except HfHubHTTPError as error:
        raise HubUnreachableError(f"The Hugging Face Hub answered with an error for {where}: {error}") from None
    except OSError as error:
        raise HubUnreachableError(f"Could not download {where} from the Hugging Face Hub: {error}") from None


def _check_folder(folder: Path, label: str) -> ModelConfig:
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise ModelFilesError(f"The model {label} has no {name}.")
    try:
        config = ModelConfig.read(folder)
    except ConfigError as error:
        raise ModelFilesError(f"The model {label} cannot be used: {error}.") from None
    _check_weights(folder / WEIGHTS_FILE, config, label)
    if config.sure and config.sure.needs_stats:
        _read_sure_stats(folder, config, label)
    return config


def _read_sure_stats(folder: Path, config: ModelConfig, label: str) -> dict[str, np.ndarray]:
    """``sure.safetensors``: finite class means, one per class (and a bank of training features for a
    nearest-neighbour score), each FEATURE_DIM wide."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = folder / STATS_FILE
    if not path.is_file():
        raise ModelFilesError(f"The model {label} has no {STATS_FILE}, which its sure rule needs.")
    try:
        stats = load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFilesError(f"The {STATS_FILE} of {label} is corrupt ({error}).") from None
    shapes = {"class_means": (len(config.class_names), FEATURE_DIM)}
    if config.sure.score.startswith("knn_cosine"):
        shapes["knn_bank"] = (stats["knn_bank"].shape[0] if "knn_bank" in stats else 0, FEATURE_DIM)
    for name, shape in shapes.items():
        tensor = stats.get(name)
        if tensor is None or tensor.shape != shape or not shape[0] or not np.isfinite(tensor).all():
            raise ModelFilesError(f"The {STATS_FILE} of {label} holds no finite {name} of shape {shape}.")
    return {name: stats[name].astype(np.float32) for name in shapes}


def _check_weights(path: Path, config: ModelConfig, label: str) -> None:
    """Readable, finite, and with the heads the config describes (numpy only; torch checks the rest)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFilesError(f"The {WEIGHTS_FILE} of {label} is corrupt ({error}).") from None
    sizes = {head: len(labels) for head, labels in config.vocabularies.items()}
    inputs = {head: FEATURE_DIM for head in ATTRIBUTE_HEADS}
    inputs["model"] = FEATURE_DIM + sum(sizes[head] for head in ATTRIBUTE_HEADS)
    expected = {f"{HEAD_LAYERS[head]}.weight": (sizes[head], inputs[head]) for head in HEAD_LAYERS}
    for name, shape in expected.items():
        if name not in tensors:
            raise ModelConfigMismatchError(f"The weights of {label} do not match its config.json: no {name}.")
        if tensors[name].shape != shape:
            raise ModelConfigMismatchError(
                f"The weights of {label} do not match its config.json: {name} is {tensors[name].shape}, not {shape}."
            )
    for name, tensor in tensors.items():
        if np.issubdtype(tensor.dtype, np.floating) and not np.isfinite(tensor).all():
            raise ModelFilesError(f"The {WEIGHTS_FILE} of {label} holds NaN or infinite values ({name}).")


def _check_outputs(backend, config: ModelConfig, label: str) -> None:
    """A first run on a grey image: every head must give finite probabilities that sum to one."""
    probe = np.zeros((1, 3, config.image_size, config.image_size), dtype=np.float32)
    for head, probs in backend.probabilities(probe).items():
        if not np.isfinite(probs).all() or abs(float(probs.sum()) - 1.0) > 1e-3:
            raise ModelFilesError(f"The {ONNX_FILE} of {label} gives no valid probabilities for the {head} head.")
