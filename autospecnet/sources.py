"""Resolve a model source to a loaded AutoSpecNet: a local folder, or a Hub repo ``owner/name[@revision]``.

Hub repos go through huggingface_hub's own download and cache (``HF_HOME``,
``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, ``HF_TOKEN`` or a saved login for private repos).
Only ``config.json``, ``model.safetensors`` and other JSON/Markdown/CSV files are
fetched and read: nothing is unpickled. Each failure is its own ``ModelLoadError``
subclass with a message fit for a user.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors import SafetensorError

from autospecnet.labels import LabelError
from autospecnet.model import AutoSpecNet

MODEL_ENV = "AUTOSPECNET_MODEL"
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
BUNDLED_MODEL_DIR = ASSETS_DIR / "model"
HUB_FILES = ["*.json", "*.safetensors", "*.md", "*.csv"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelLoadError(RuntimeError):
    """The model could not be loaded; ``str(error)`` says why, for a user."""


class HubUnreachableError(ModelLoadError):
    """The Hub could not be reached (offline, no network) and the model is not in the cache."""


class ModelNotFoundError(ModelLoadError):
    """No such folder, repo or revision (or a private repo without a valid token)."""


class ModelFilesError(ModelLoadError):
    """A file is missing, unreadable or not what an AutoSpecNet model folder holds."""


class ModelConfigMismatchError(ModelLoadError):
    """config.json and model.safetensors do not describe the same network."""


@dataclass(frozen=True)
class LoadedModel:
    model: AutoSpecNet
    source: str  # as given: a folder or "owner/name@rev"
    kind: str  # "local" or "hub"
    folder: Path  # where the files are on disk (the Hub cache's snapshot for hub sources)
    revision: str | None  # the commit the Hub resolved, for hub sources

    @property
    def test_metrics(self) -> dict | None:
        """The model's per-head test metrics, if its folder has ``test_metrics.json``."""
        path = self.folder / "test_metrics.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None


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


def load_model(source: str | os.PathLike | None = None) -> LoadedModel:
    source = str(source) if source is not None else default_source()
    path = Path(source).expanduser()
    if path.exists() or _looks_local(source):
        if not path.is_dir():
            raise ModelNotFoundError(f"No model folder at {path}.")
        return LoadedModel(_load_folder(path), source, "local", path, None)
    repo_id, revision = parse_hub_source(source)
    folder = Path(_download(repo_id, revision))
    return LoadedModel(_load_folder(folder, label=source), source, "hub", folder, folder.name)


def _download(repo_id: str, revision: str | None) -> str:
    where = f"{repo_id}" + (f" at revision {revision!r}" if revision else "")
    try:
        return snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILES)
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
            f"Cannot reach the Hugging Face Hub ({constants.ENDPOINT}) to fetch {where}, and it is not in the local cache."
        ) from None
    except HfHubHTTPError as error:
        raise HubUnreachableError(f"The Hugging Face Hub answered with an error for {where}: {error}") from None
    except OSError as error:
        raise HubUnreachableError(f"Could not download {where} from the Hugging Face Hub: {error}") from None


def _load_folder(folder: Path, label: str | None = None) -> AutoSpecNet:
    label = label or str(folder)
    for name in (constants.CONFIG_NAME, constants.SAFETENSORS_SINGLE_FILE):
        if not (folder / name).is_file():
            raise ModelFilesError(f"The model {label} has no {name}.")
    try:
        config = json.loads((folder / constants.CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelFilesError(f"The model {label} has an unreadable config.json ({error}).") from None
    if not isinstance(config, dict) or "class_names" not in config:
        raise ModelFilesError(f"The config.json of {label} is not an AutoSpecNet config (no class_names).")
    try:
        return AutoSpecNet.from_pretrained(folder)
    except (TypeError, LabelError) as error:
        raise ModelFilesError(f"The config.json of {label} is not a valid AutoSpecNet config ({error}).") from None
    except SafetensorError as error:
        raise ModelFilesError(f"The model.safetensors of {label} is corrupt ({error}).") from None
    except RuntimeError as error:  # load_state_dict: missing/unexpected keys, shape mismatches
        first_line = str(error).strip().splitlines()
        detail = " ".join(line.strip() for line in first_line[:3])
        raise ModelConfigMismatchError(f"The weights of {label} do not match its config.json: {detail[:400]}") from None
