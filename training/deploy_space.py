"""Deploy this repository as a Hugging Face Space (Docker SDK), the app and its bundled model.

    python -m training.deploy_space owner/autospecnet            # create or update the Space
    python -m training.deploy_space owner/autospecnet --dry-run  # list what would be uploaded

``HfApi.upload_folder`` stores binary files (``model.safetensors``, ``model.onnx``) through the
Hub's large-file storage itself, so no Git LFS set-up is needed; pushing with ``git push`` works
too once Git LFS is installed (``.gitattributes`` names the binary files), but only for a history
that never held those files as plain Git objects. Only what the image needs is uploaded: the
patterns in ``.dockerignore`` and runs, tests and caches are left out. The token comes from the
usual places (``HF_TOKEN``, ``hf auth login``).
"""

from __future__ import annotations

import argparse
import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALWAYS_IGNORED = [".git", ".git/*", ".venv/*", "runs/*", "*/__pycache__/*", "*.pyc", ".test-artifacts/*"]


def ignore_patterns(root: Path = ROOT) -> list[str]:
    """.dockerignore's patterns (a folder also stands for everything under it), plus local state."""
    patterns = list(ALWAYS_IGNORED)
    dockerignore = root / ".dockerignore"
    if dockerignore.is_file():
        for line in dockerignore.read_text().splitlines():
            line = line.strip().removeprefix("**/")
            if line and not line.startswith("#"):
                patterns += [line, f"{line}/*"]
    return patterns


def files_to_upload(root: Path = ROOT) -> list[str]:
    patterns = ignore_patterns(root)
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not any(fnmatch.fnmatch(relative, p) for p in patterns):
            files.append(relative)
    return files


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("space_id", help="the Space, owner/name")
    parser.add_argument("--private", action="store_true", help="create the Space as private")
    parser.add_argument("--dry-run", action="store_true", help="list the files; no network")
    return parser


def main(args) -> None:
    files = files_to_upload()
    if args.dry_run:
        print("\n".join(files))
        print(f"{len(files)} files would be uploaded to the Space {args.space_id}")
        return
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(args.space_id, repo_type="space", space_sdk="docker", private=args.private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=args.space_id,
        repo_type="space",
        folder_path=ROOT,
        ignore_patterns=ignore_patterns(),
        commit_message="Deploy AutoSpecNet",
    )
    print(f"deployed to https://huggingface.co/spaces/{args.space_id} ({commit.oid})")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
