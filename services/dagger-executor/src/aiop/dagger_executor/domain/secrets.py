"""Resolving a step's secret names to values, at the step's start.

A secret is looked up first among the secrets stored for the workflow's project (KV
``aiop_secrets``, opened with this executor's key; ``adapters/secret_store.py``), then in
the executor's environment: a secret named ``db_password`` is read from
``AIOP_SECRET_db_password`` or else from ``AIOP_SECRET_DB_PASSWORD``. Names never leave
the executor with their values, and no problem reported here holds a value.
"""

from collections.abc import Awaitable, Callable, Iterable, Mapping

PREFIX = "AIOP_SECRET_"

# (project, name) -> the stored value, or None when the project has no such secret.
# Raises SecretUnavailable when it cannot tell.
Lookup = Callable[[str, str], Awaitable[str | None]]


class SecretUnavailable(Exception):
    """A stored secret that cannot be read now: the store does not answer, or the value
    does not open with this executor's key. The message names it, never its value."""


def secret_variable(name: str) -> str:
    return PREFIX + name.upper().replace("-", "_")


def resolve_secrets(
    names: Iterable[str], environ: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """(name -> value for each secret found, names not found)."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in names:
        value = environ.get(PREFIX + name, environ.get(secret_variable(name)))
        if value is None:
            missing.append(name)
        else:
            found[name] = value
    return found, missing


async def resolve_stored_secrets(
    names: Iterable[str], project: str, environ: Mapping[str, str], lookup: Lookup | None
) -> tuple[dict[str, str], list[str]]:
    """(name -> value for each secret found, why each other one is not), looked up in
    ``project``'s stored secrets first, then in ``environ``."""
    found: dict[str, str] = {}
    problems: list[str] = []
    for name in names:
        try:
            value = await lookup(project, name) if lookup is not None else None
        except SecretUnavailable as exc:
            problems.append(f"{name} ({exc})")
            continue
        if value is None:
            value = environ.get(PREFIX + name, environ.get(secret_variable(name)))
        if value is not None:
            found[name] = value
        elif lookup is None:
            problems.append(f"{name} ({secret_variable(name)} is not set on this executor)")
        else:
            problems.append(
                f"{name} (not stored in project {project!r}, and {secret_variable(name)}"
                " is not set on this executor)"
            )
    return found, problems
