"""What the executor puts in a step's work directory before it runs (its ``files``) and
reads back after it succeeded (its summary).

Both happen on the host work directory whichever runner runs the step: the Dagger runner
writes the same files into its container and exports the summary back.
"""

import os
import stat
from pathlib import Path

from aiop.dagger_executor.domain.summary import MAX_SUMMARY_BYTES, SUMMARY_FILE, SummaryIgnored


def write_files(workdir: Path, files: dict[str, str]) -> None:
    """Write each file (its folders made); modes set, not left to the umask, so a step
    under a uid of its own can read them (it is given their ownership to change them)."""
    root = workdir.absolute()
    for path, text in files.items():
        target = root / path
        _make_folders(target.parent)
        # Validation keeps ``..`` out; an input's archive could still hold a link that
        # leads elsewhere, and the executor may be root.
        if not target.resolve().is_relative_to(root.resolve()):
            raise OSError(f"{path!r} leads out of the work directory")
        target.write_text(text, encoding="utf-8")
        target.chmod(0o644)


def _make_folders(folder: Path) -> None:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir()
        made.chmod(0o755)


def read_summary(workdir: Path) -> bytes | None:
    """The step's summary file, up to one byte past the limit (so an oversized one is
    known as such without reading it all); None when the step wrote none.

    Only a regular file, never through a link: the executor may be root, and a step must
    not have it publish a file the step itself could not read (or wait on a pipe)."""
    try:
        fd = os.open(workdir / SUMMARY_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SummaryIgnored(f"it cannot be opened ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as summary:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SummaryIgnored("it is not a regular file")
        return summary.read(MAX_SUMMARY_BYTES + 1)


AGENT_OUTPUT_FILE = "output.json"  # an agent step's output, for steps that take its outputs


def write_agent_output(workdir: Path, raw: bytes) -> None:
    """An agent step's JSON output, as its summary and as ``output.json``."""
    _make_folders(workdir.absolute())
    for name in (SUMMARY_FILE, AGENT_OUTPUT_FILE):
        (workdir / name).write_bytes(raw)
        (workdir / name).chmod(0o644)
