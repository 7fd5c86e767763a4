"""Keeping a local step away from the platform and from other steps (docs/security.md).

- **Its own uid.** When the executor runs as root, each running step gets a uid of its
  own from a reserved range (no account exists for it): its work directory is its alone
  (0700), and it can read neither the platform's files (keys, principals, the bus
  identities, all 0600 or in 0700 folders) nor the services' ``/proc/<pid>/environ``. The
  directory is handed back to the executor when the step ends, so the next step given the
  same uid cannot read it.
- **A private namespace**, where bubblewrap is installed: the file system read-only but
  for the work directory and a private ``/tmp``, its own process tree (the services'
  processes are not even visible), and no network unless the step asks for it.

Neither is possible for an unprivileged executor without bubblewrap; it then says so at
start, and ``step_isolation="required"`` refuses to start instead.
"""

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("aiop.dagger_executor.isolation")

# uids no account uses; one per step running at once.
STEP_UIDS = range(2_000_000_000, 2_000_000_000 + 1024)


class CannotIsolate(RuntimeError):
    """Separation was required, and this executor can provide none."""


@dataclass
class Isolation:
    separate_uids: bool
    bwrap: str | None = None
    _free: asyncio.Queue[int] | None = field(default=None, init=False, repr=False)

    def summary(self) -> str:
        parts = []
        if self.separate_uids:
            parts.append("each step under a uid of its own")
        if self.bwrap:
            parts.append("in a private namespace (bubblewrap), network only on request")
        if not parts:
            return "steps are NOT separated from the platform: they run as its own user"
        return "; ".join(parts)

    @contextlib.asynccontextmanager
    async def step_uid(self) -> AsyncIterator[int | None]:
        """A uid no other running step has, for the step's lifetime; None without uids."""
        if not self.separate_uids:
            yield None
            return
        if self._free is None:
            self._free = asyncio.Queue()
            for uid in STEP_UIDS:
                self._free.put_nowait(uid)
        uid = await self._free.get()  # more steps than uids at once wait for one
        try:
            yield uid
        finally:
            self._free.put_nowait(uid)

    def command(
        self, argv: list[str], workdir: Path, network: bool, writable: Sequence[Path] = ()
    ) -> list[str]:
        """``argv`` as run: inside bubblewrap where there is one, with ``writable`` (cache
        volumes) bound read-write besides its work directory."""
        if self.bwrap is None:
            return argv
        binds = [arg for path in writable for arg in ("--bind", str(path), str(path))]
        wd = str(workdir)
        return [
            self.bwrap, "--die-with-parent", "--new-session", "--unshare-all",
            *(["--share-net"] if network else []),
            "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp",  # noqa: S108 - a private, empty /tmp inside the namespace
            *binds, "--bind", wd, wd, "--chdir", wd, "--", *argv,
        ]  # fmt: skip


def choose(mode: str, use_bwrap: bool = True) -> Isolation:
    """The isolation this executor can give: ``mode`` "auto", "required" or "off"."""
    if mode == "off":
        return Isolation(separate_uids=False)
    isolation = Isolation(
        separate_uids=os.name == "posix" and os.geteuid() == 0,
        bwrap=shutil.which("bwrap") if use_bwrap else None,
    )
    if not isolation.separate_uids and not isolation.bwrap and mode == "required":
        raise CannotIsolate(
            "steps cannot be separated from the platform: run the executor as root (steps"
            " then get uids of their own) or install bubblewrap"
        )
    return isolation


def prepare_workdir(workdir: Path, uid: int | None) -> None:
    """The step's directory, its alone with all in it (its inputs and files, which it may
    change); the folders above it traversable, not listable."""
    # Top-down, so a fresh workflow costs three mkdirs rather than five failed and made.
    os.makedirs(workdir, exist_ok=True)
    if uid is None:
        return
    made, above = _parents_below_work_root(workdir), list(workdir.parents)[3:]
    for parent in made:
        parent.chmod(0o711)
    # The step must pass through every folder above its own (bubblewrap resolves the path
    # as the step). Those lacking it get execute-only for others, as PostgreSQL's helper
    # opens the folders above its data: they stay unlistable.
    for parent in above:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            log.warning("letting steps pass through %s (o+x) to reach their work", parent)
            parent.chmod(mode | 0o001)
    for path in _tree(workdir):  # hand_back takes them back
        os.chown(path, uid, uid, follow_symlinks=False)
    workdir.chmod(0o700)


def hand_back(workdir: Path) -> None:
    """Give the step's files to the executor, so the next step with this uid cannot read
    them (a later step that needs them gets them from the executor)."""
    me = os.geteuid()
    for path in _tree(workdir):
        with contextlib.suppress(FileNotFoundError):
            os.chown(path, me, me, follow_symlinks=False)


def _tree(root: Path) -> Iterator[Path]:
    yield root
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            yield Path(folder) / name


def _parents_below_work_root(workdir: Path) -> list[Path]:
    """``<work>/<workflow>/<attempt>``, and ``<work>`` itself: the step's parents that
    the executor made (work dirs are ``<work>/<workflow>/<attempt>/<step>``)."""
    return list(workdir.parents)[:3]
