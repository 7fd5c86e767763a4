"""Templates in KV ``aiop_templates``: a project's own under ``<project>.<name>.<version>``,
the built-in ones, which every project sees, under ``_.<name>.<version>``.

A version, once stored, keeps its content: registering it again with other content is a
conflict (a new version is the way to change a template). Built-in templates are the
platform's: they are written at the gateway's start from the templates folder, replacing
what an older gateway wrote.
"""

import asyncio
import logging
from pathlib import Path

import msgspec
import nats.js.errors
import yaml
from nats.js.kv import KeyValue

from aiop.contracts.events import now
from aiop.contracts.templates import (
    BUILTIN,
    InvalidTemplate,
    Template,
    check_template,
    inline_files,
    template_key,
)
from aiop.servicekit.templates import find as find
from aiop.servicekit.templates import stored
from aiop.servicekit.templates import visible as visible

log = logging.getLogger("aiop.gateway.templates")
_template = msgspec.json.Decoder(Template)


class VersionTaken(Exception):
    """That name@version is stored already, with other content."""


async def builtin_versions(kv: KeyValue, name: str) -> list[Template]:
    """The built-in template's versions, if ``name`` is one (one watch, not two)."""
    return await stored(kv, f"{BUILTIN}.{name}.>")


async def register(kv: KeyValue, template: Template) -> tuple[Template, bool]:
    """Store ``template``; the stored one and whether it is new. VersionTaken when that
    version holds other content."""
    key = template_key(template.project, template.name, template.version)
    fresh = msgspec.structs.replace(template, created_at=now())
    try:
        await kv.create(key, msgspec.json.encode(fresh))
        return fresh, True
    except nats.js.errors.KeyWrongLastSequenceError:
        pass
    entry = await kv.get(key)
    current = _template.decode(entry.value or b"{}")
    if msgspec.structs.replace(current, created_at=None) != template:
        raise VersionTaken(f"{template.ref} is registered already, with other content")
    return current, False


def load_file(path: Path, project: str = BUILTIN) -> Template:
    """A template file (YAML) as a Template of ``project``, its ``{from: ...}`` files read
    relative to the file. InvalidTemplate if it is not one."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidTemplate([f"{path}: {exc}"]) from exc
    if not isinstance(document, dict):
        raise InvalidTemplate([f"{path}: not a mapping"])
    document = inline_files(document, path.parent)
    try:
        template = msgspec.convert({**document, "project": project}, Template)
    except msgspec.ValidationError as exc:
        raise InvalidTemplate([f"{path}: {exc}"]) from exc
    problems = check_template(template)
    if problems:
        raise InvalidTemplate([f"{path}: {p}" for p in problems])
    return template


def load_folder(folder: Path) -> list[Template]:
    """Every valid ``<folder>/*/template.yaml``; the others are logged and left out."""
    found = []
    for path in sorted(folder.glob("*/template.yaml")):
        try:
            found.append(load_file(path))
        except InvalidTemplate as exc:
            log.error("built-in template not installed: %s", exc)
    return found


async def install_builtins(kv: KeyValue, folder: Path) -> list[str]:
    """Write the templates of ``folder`` (``load_folder``) as built-in; their refs."""
    templates = await asyncio.to_thread(load_folder, folder)
    for template in templates:
        key = template_key(BUILTIN, template.name, template.version)
        try:
            entry = await kv.get(key)
            current = _template.decode(entry.value) if entry.value else None
        except nats.js.errors.KeyNotFoundError:
            current = None
        if current is None or msgspec.structs.replace(current, created_at=None) != template:
            stamped = msgspec.structs.replace(template, created_at=now())
            await kv.put(key, msgspec.json.encode(stamped))
    return [t.ref for t in templates]
