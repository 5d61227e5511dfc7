"""Model sources: local folders in process; Hub repos through huggingface_hub's real code in a
subprocess (its settings are read at import), against a local endpoint and an offline cache."""

import json
import pickle
import shutil

import pytest
from safetensors.torch import save_file

from autospecnet.labels import Taxonomy, read_class_names
from autospecnet.model import AutoSpecNet
from autospecnet.sources import (
    ModelConfigMismatchError,
    ModelFilesError,
    ModelNotFoundError,
    load_model,
    parse_hub_source,
)
from tests.conftest import free_port, run_python
from tests.local_hub import LocalHub

LOAD_AND_REPORT = """
import json, sys
from autospecnet.sources import load_model, ModelLoadError
try:
    loaded = load_model(sys.argv[1])
    classes = len(loaded.model.taxonomy.class_names)
    print(json.dumps({"kind": loaded.kind, "revision": loaded.revision, "classes": classes}))
except ModelLoadError as error:
    print(json.dumps({"error": type(error).__name__, "message": str(error)}))
"""


def load_in_subprocess(source: str, **env) -> dict:
    result = run_python("-c", LOAD_AND_REPORT, source, env={"HF_HUB_DISABLE_TELEMETRY": "1", **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


class Unpicklable:
    """Creates a marker file if anything ever unpickles it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def model_copy(random_model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(random_model_dir, folder)
    return folder


def test_local_folder(random_model_dir):
    loaded = load_model(random_model_dir)
    assert (loaded.kind, loaded.revision, loaded.folder) == ("local", None, random_model_dir)
    assert loaded.model.image_size == 96 and not loaded.model.training


def test_parse_hub_source():
    assert parse_hub_source("acme/cars@v1.2") == ("acme/cars", "v1.2")
    assert parse_hub_source("acme/cars") == ("acme/cars", None)


@pytest.mark.parametrize("source", ["./no/such/folder", "/no/such/folder", "~/no-such-model"])
def test_missing_local_folder(source):
    with pytest.raises(ModelNotFoundError, match="No model folder"):
        load_model(source)


def test_missing_weights(model_copy):
    (model_copy / "model.safetensors").unlink()
    with pytest.raises(ModelFilesError, match="no model.safetensors"):
        load_model(model_copy)


def test_pickled_weights_are_never_loaded(model_copy, tmp_path):
    (model_copy / "model.safetensors").unlink()
    marker = tmp_path / "unpickled"
    (model_copy / "pytorch_model.bin").write_bytes(pickle.dumps(Unpicklable(marker)))
    with pytest.raises(ModelFilesError, match="no model.safetensors"):
        load_model(model_copy)
    assert not marker.exists()


def test_corrupt_weights(model_copy):
    (model_copy / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ModelFilesError, match="corrupt"):
        load_model(model_copy)


def test_truncated_weights(model_copy):
    data = (model_copy / "model.safetensors").read_bytes()
    (model_copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFilesError, match="corrupt"):
        load_model(model_copy)


@pytest.mark.parametrize(
    "config, message",
    [
        ("{not json", "config.json is unreadable"),
        ('{"hidden_size": 3}', "not an AutoSpecNet config"),
        ("[1, 2]", "not an AutoSpecNet config"),
    ],
)
def test_bad_config(model_copy, config, message):
    (model_copy / "config.json").write_text(config)
    with pytest.raises(ModelFilesError, match=message):
        load_model(model_copy)


def test_config_that_does_not_match_the_weights(model_copy):
    smaller = Taxonomy.from_class_names(read_class_names()[:150])
    AutoSpecNet.from_taxonomy(smaller).save_pretrained(model_copy.parent / "other")
    shutil.copy(model_copy.parent / "other" / "config.json", model_copy / "config.json")
    with pytest.raises(ModelConfigMismatchError, match="do not match its config.json"):
        load_model(model_copy)


def test_weights_with_missing_tensors(model_copy):
    from safetensors.torch import load_file

    tensors = load_file(model_copy / "model.safetensors")
    del tensors["model_head.2.weight"]
    save_file(tensors, model_copy / "model.safetensors")
    with pytest.raises(ModelConfigMismatchError, match="model_head.2.weight"):
        load_model(model_copy)


@pytest.fixture(scope="module")
def hub(random_model_dir, tmp_path_factory):
    no_weights = tmp_path_factory.mktemp("no-weights")
    shutil.copy(random_model_dir / "config.json", no_weights / "config.json")
    with LocalHub() as local_hub:
        local_hub.add("acme/cars", random_model_dir, revisions=("main", "v1"))
        local_hub.add("acme/no-weights", no_weights)
        yield local_hub


@pytest.mark.slow
def test_hub_download_then_offline_cache(hub, tmp_path):
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf")}
    online = load_in_subprocess("acme/cars@v1", **env)
    assert online["kind"] == "hub" and online["classes"] == 196
    assert online["revision"] == hub.repos["acme/cars"]["v1"][0]
    assert any(r.startswith("GET /acme/cars/resolve/") and r.endswith("model.safetensors") for r in hub.requests)

    hub.requests.clear()
    offline = load_in_subprocess("acme/cars@v1", HF_HUB_OFFLINE="1", **env)
    assert offline == online
    assert hub.requests == []

    not_cached = load_in_subprocess("acme/cars@main", HF_HUB_OFFLINE="1", **env)
    assert not_cached["error"] == "HubUnreachableError" and "HF_HUB_OFFLINE" in not_cached["message"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "source, error, message",
    [
        ("acme/nothing", "ModelNotFoundError", "No model repo acme/nothing"),
        ("acme/cars@v9", "ModelNotFoundError", "no revision 'v9'"),
        ("acme/no-weights", "ModelFilesError", "no model.safetensors"),
    ],
)
def test_hub_failures(hub, tmp_path, source, error, message):
    report = load_in_subprocess(source, HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf"))
    assert report["error"] == error and message in report["message"]


@pytest.mark.slow
def test_unreachable_hub(tmp_path):
    closed_port = free_port()
    report = load_in_subprocess(
        "acme/cars", HF_ENDPOINT=f"http://127.0.0.1:{closed_port}", HF_HOME=str(tmp_path / "hf")
    )
    assert report["error"] == "HubUnreachableError" and "Cannot reach the Hugging Face Hub" in report["message"]
