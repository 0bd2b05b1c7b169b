"""The one template syntax of contracts: `{name}` fields over declared variables, nothing else.

`*` in a path is a glob, not a template. Format specs, conversions, attribute access and indexing
are rejected when a contract loads.
"""

from __future__ import annotations

import string

_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    pass


def variables(template: str) -> list[str]:
    """The variable names `template` uses; a TemplateError for anything but plain `{name}`."""
    names = []
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise TemplateError(f"{template!r} is not a valid template ({exc})") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise TemplateError(f"{template!r} uses {{{name}}}; only plain {{name}} fields are allowed")
        names.append(name)
    return names


def render(template: str, values: dict[str, str]) -> str:
    missing = [n for n in variables(template) if n not in values]
    if missing:
        raise TemplateError(f"{template!r} needs {{{missing[0]}}}, which has no value at this stage")
    return template.format_map(values)
