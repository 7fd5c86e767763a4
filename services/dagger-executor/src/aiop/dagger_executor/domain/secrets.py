"""Resolving a step's secret names to values from the executor's environment.

A secret named ``db_password`` is read from ``AIOP_SECRET_db_password`` or else from
``AIOP_SECRET_DB_PASSWORD``; names never leave the executor with their values.
"""

from collections.abc import Iterable, Mapping

PREFIX = "AIOP_SECRET_"


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
