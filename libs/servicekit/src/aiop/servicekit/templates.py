"""Reading the template catalogue (KV ``aiop_templates``), as the gateway does for a run
asked over the API and task-manager does for a trigger, a schedule or a task.

A project's own templates are under ``<project>.<name>.<version>``, the built-in ones,
which every project sees, under ``_.<name>.<version>``.
"""

import msgspec
from nats.js.kv import KeyValue

from aiop.contracts.templates import BUILTIN, Template, version_order
from aiop.servicekit.kv import current_values

_template = msgspec.json.Decoder(Template)


async def stored(kv: KeyValue, pattern: str) -> list[Template]:
    """Every template under keys matching ``pattern``."""
    return [_template.decode(value) for value in await current_values(kv, pattern)]


async def visible(kv: KeyValue, project: str, name: str = ">") -> list[Template]:
    """The project's templates and the built-in ones (all, or the versions of ``name``),
    the project's own first where both have a name."""
    suffix = ">" if name == ">" else f"{name}.>"
    own = await stored(kv, f"{project}.{suffix}")
    names = {t.name for t in own}
    builtin = [t for t in await stored(kv, f"{BUILTIN}.{suffix}") if t.name not in names]
    return own + builtin


async def find(kv: KeyValue, project: str, name: str, version: str | None) -> Template | None:
    """``name@version`` as the project sees it; without a version, the highest one."""
    versions = await visible(kv, project, name)
    if version is not None:
        versions = [t for t in versions if t.version == version]
    return max(versions, key=lambda t: version_order(t.version), default=None)
