"""Reads the Logstash pipeline through lscl's parser so tests can compare it with the code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lscl.lang import LsclAttribute, LsclBlock, LsclConditions, LsclEqualTo, LsclSelector
from lscl.parser import parse_lscl

REPO = Path(__file__).resolve().parents[1]
PIPELINE_PATH = REPO / "logstash" / "pipeline" / "LOGSTASH_UNIFICADO_FIN_TRANS.conf"
TEMPLATES_DIR = REPO / "logstash" / "templates"
FLOW_FIELD = ["@metadata", "flow"]


@dataclass(frozen=True)
class Plugin:
    section: str  # input, filter or output
    name: str  # file, kafka, csv, mutate, ...
    attrs: dict[str, Any]
    guards: tuple[Any, ...]  # the conditions around it, outermost first; "else" for a default

    @property
    def flow(self) -> str | None:
        """batch / transactions: from add_field on inputs, from the enclosing condition else."""
        if self.section == "input":
            return self.attrs.get("add_field", {}).get("[@metadata][flow]")
        for guard in self.guards:
            if (
                isinstance(guard, LsclEqualTo)
                and isinstance(guard.first, LsclSelector)
                and guard.first.names == FLOW_FIELD
            ):
                return guard.second
        return None


def parse(text: str) -> list[Plugin]:
    plugins: list[Plugin] = []
    for section in parse_lscl(text):
        assert isinstance(section, LsclBlock), section
        plugins.extend(_walk(section.content, section.name, ()))
    return plugins


def _walk(content: list, section: str, guards: tuple) -> Iterator[Plugin]:
    for item in content:
        if isinstance(item, LsclBlock):
            attrs = {a.name: a.content for a in item.content if isinstance(a, LsclAttribute)}
            yield Plugin(section, item.name, attrs, guards)
        elif isinstance(item, LsclConditions):
            for condition, body in item.conditions:
                yield from _walk(body, section, (*guards, condition))
            if item.default is not None:
                yield from _walk(item.default, section, (*guards, "else"))


def pipeline_plugins() -> list[Plugin]:
    return parse(PIPELINE_PATH.read_text())


def find(plugins: list[Plugin], section: str, name: str, flow: str) -> list[Plugin]:
    return [p for p in plugins if (p.section, p.name, p.flow) == (section, name, flow)]


def by_id(plugins: list[Plugin], plugin_id: str) -> Plugin:
    (plugin,) = [p for p in plugins if p.attrs.get("id") == plugin_id]
    return plugin


def env_default(value: str) -> str:
    """Logstash's `${NAME:default}` substitution with every variable unset: the defaults."""
    return re.sub(r"\$\{[A-Za-z0-9_]+(?::([^}]*))?\}", lambda m: m.group(1) or "", value)


def sprintf_fields(template: str) -> list[str]:
    """Field names referenced as `%{name}` in a Logstash sprintf string."""
    return re.findall(r"%\{([^}]+)\}", template)


def sprintf(template: str, doc: dict) -> str:
    return re.sub(r"%\{([^}]+)\}", lambda m: str(doc[m.group(1)]), template)
