"""Build a source archive of a project: dist/<name>-<version>.tar.gz (or .zip), with the
name and version read from its pyproject.toml. The archive is reproducible (sorted entries,
fixed times and owners), so the same sources always give the same bytes. Its size, file
count and sha256 go to $AIOP_SUMMARY.

    python3 steps/package.py PROJECT [--format tar.gz|zip]
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

SKIP = {"__pycache__", ".git"}


def project_files(root: Path) -> list[Path]:
    """The project's files, sorted, without caches or bytecode."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix != ".pyc" and not SKIP & set(p.relative_to(root).parts)
    )


def build(root: Path, files: list[Path], prefix: str, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                entry = zipfile.ZipInfo(f"{prefix}/{path.relative_to(root)}", (1980, 1, 1, 0, 0, 0))
                entry.external_attr = 0o644 << 16
                archive.writestr(entry, path.read_bytes(), zipfile.ZIP_DEFLATED)
        return buffer.getvalue()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for path in files:
            data = path.read_bytes()
            entry = tarfile.TarInfo(f"{prefix}/{path.relative_to(root)}")
            entry.size, entry.mode, entry.mtime = len(data), 0o644, 0
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--format", choices=["tar.gz", "zip"], default="tar.gz")
    args = parser.parse_args()

    meta = tomllib.loads((args.project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    prefix = f"{meta['name']}-{meta['version']}"
    files = project_files(args.project)
    data = build(args.project, files, prefix, args.format)

    target = Path("dist") / f"{prefix}.{args.format}"
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(data)
    figures = {
        "package": target.name,
        "package_bytes": len(data),
        "package_files": len(files),
        "package_sha256": hashlib.sha256(data).hexdigest(),
    }
    with open(os.environ.get("AIOP_SUMMARY", os.devnull), "w", encoding="utf-8") as out:
        json.dump(figures, out)
    print(f"package: {target} ({len(files)} files, {len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
