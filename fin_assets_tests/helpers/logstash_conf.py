"""Reads the Logstash pipelines through lscl's parser so tests can compare them with the code,
and runs their ruby filters in JRuby (the runtime Logstash embeds)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lscl.lang import LsclAttribute, LsclBlock, LsclConditions, LsclEqualTo, LsclSelector
from lscl.parser import parse_lscl

from fin_assets_tests.helpers.paths import CACHE_DIR, REPO

PIPELINE_DIR = REPO / "logstash" / "pipeline"
PIPELINE_PATH = PIPELINE_DIR / "LOGSTASH_UNIFICADO_FIN_TRANS.conf"
DEAD_LETTER_PATH = PIPELINE_DIR / "dead_letter.conf"
PIPELINES_YML = REPO / "logstash" / "config" / "pipelines.yml"
LOGSTASH_YML = REPO / "logstash" / "config" / "logstash.yml"
OPTION_TABLE_PATH = REPO / "logstash" / "plugin_options.json"
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


def pipeline_plugins(path: Path = PIPELINE_PATH) -> list[Plugin]:
    return parse(path.read_text())


def pipeline_files() -> list[Path]:
    return sorted(PIPELINE_DIR.glob("*.conf"))


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


def field_path(reference: str) -> list[str]:
    """`name` or `[a][b]` -> the keys it walks."""
    return re.findall(r"\[([^\]]+)\]", reference) if reference.startswith("[") else [reference]


def sprintf(template: str, doc: dict) -> str:
    def value(match: re.Match) -> str:
        node = doc
        for key in field_path(match.group(1)):
            node = node[key]
        return str(node)

    return re.sub(r"%\{([^}]+)\}", value, template)


# --- JRuby: the pipeline's ruby filters, run as Logstash's ruby filter runs them ---------------
# Logstash 8.19 embeds JRuby 9.4 (Ruby 3.1). jruby-complete comes from Maven Central, into the
# same cache-local Maven repository the service scripts use.
JRUBY_VERSION = "9.4.13.0"

# The ruby filter's contract (logstash-filter-ruby): `init` is evaluated once with the filter
# as self, `code` becomes `lambda { |event, &new_event_block| <code> }`, and an exception tags
# the event `_rubyexception`. The Event class below has the part of the Event API the
# pipelines use: get/set with field references, tag, to_hash.
RUBY_HARNESS = r"""
require 'json'
class Event
  def initialize(data)
    @data = data
    @data['@metadata'] ||= {}
  end
  def keys_of(ref)
    ref.start_with?('[') ? ref.scan(/\[([^\]]+)\]/).flatten : [ref]
  end
  def get(ref)
    keys_of(ref).reduce(@data) { |node, key| node.is_a?(Hash) ? node[key] : nil }
  end
  def set(ref, value)
    keys = keys_of(ref)
    last = keys.pop
    keys.reduce(@data) { |node, key| node[key] ||= {} }[last] = value
  end
  def tag(name)
    tags = Array(@data['tags'])
    tags << name unless tags.include?(name)
    @data['tags'] = tags
  end
  def to_hash
    @data.reject { |key, _| key == '@metadata' }
  end
  attr_reader :data
end

request = JSON.parse(STDIN.read)
filters = request['filters'].to_h do |filter|
  holder = Object.new
  holder.instance_eval(filter['init'], "(ruby filter init #{filter['id']})") if filter['init']
  [filter['id'], holder.instance_eval("lambda { |event, &new_event_block| #{filter['code']} }")]
end
results = request['cases'].map do |chain, data|
  event = Event.new(data)
  chain.each do |id|
    begin
      filters.fetch(id).call(event)
    rescue Exception => e
      event.tag('_rubyexception')
      event.set('[@metadata][ruby_exception]', "#{id}: #{e.class}: #{e.message}")
    end
  end
  event.data
end
STDOUT.write(JSON.generate(results))
"""


def jruby_jar() -> Path:
    """jruby-complete from the cache, fetched with Maven on first use."""
    cache = CACHE_DIR
    m2 = cache / "m2"
    jar = m2 / "org/jruby/jruby-complete" / JRUBY_VERSION / f"jruby-complete-{JRUBY_VERSION}.jar"
    if not jar.exists():
        subprocess.run(
            ["mvn", "-B", "-q", "-Dstyle.color=never", f"-Dmaven.repo.local={m2}",
             "dependency:get", f"-Dartifact=org.jruby:jruby-complete:{JRUBY_VERSION}",
             "-Dtransitive=false"],
            check=True, timeout=600, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return jar


def run_ruby_filters(cases: list[tuple[list[Plugin], dict]], timeout: float = 300) -> list[dict]:
    """Each (ruby filters, event) case: the event through those filters, in order; all cases in
    one JRuby process. Returns the events as the filters left them (with their @metadata)."""
    filters = {f.attrs["id"]: f for chain, _ in cases for f in chain}
    request = {
        "filters": [
            {"id": plugin_id, "init": f.attrs.get("init"), "code": f.attrs["code"]}
            for plugin_id, f in filters.items()
        ],
        "cases": [([f.attrs["id"] for f in chain], event) for chain, event in cases],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".rb", delete=False) as script:
        script.write(RUBY_HARNESS)
    try:
        done = subprocess.run(
            # C1 only: a short-lived process, startup dominates.
            ["java", "-XX:TieredStopAtLevel=1", "-jar", str(jruby_jar()), "--dev", script.name],
            input=json.dumps(request), capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    finally:
        os.unlink(script.name)
    if done.returncode != 0:
        raise RuntimeError(f"JRuby failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


# --- plugin options: every option a pipeline sets, against logstash/plugin_options.json --------
# A port of LogStash::Config::Mixin#validate_value (logstash-core/lib/logstash/config/mixin.rb)
# for the validators the table holds, plus the register-time checks the plugins make.
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
# logstash-input-file lib/logstash/inputs/friendly_durations.rb NUMBERS_RE
_FRIENDLY_DURATION = re.compile(
    r"(?P<number>\d+(\.\d+)?)\s?(?P<units>s((ec)?(ond)?)(s)?|m((in)?(ute)?)(s)?|h(our)?(s)?"
    r"|d(ay)?(s)?|w(eek)?(s)?|us(ec)?(s)?|ms(ec)?(s)?)?"
)
_DURATION_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_ENV_WITHOUT_DEFAULT = re.compile(r"\$\{[A-Za-z0-9_]+\}")


def option_table() -> dict:
    return json.loads(OPTION_TABLE_PATH.read_text())


def friendly_duration_seconds(value: str | int, default_unit: str = "seconds") -> float:
    """FriendlyDurations.call: "1 minute" -> 60.0; a bare number is in the option's unit."""
    match = _FRIENDLY_DURATION.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a valid duration string (e.g. 60 sec, 18h, 1 day)")
    number = float(match["number"])
    units = match["units"] or default_unit
    if units.startswith("ms"):
        return number / 1e3
    if units.startswith("us"):
        return number / 1e6
    return number * _DURATION_SECONDS.get(units[0], 1)


def declared_options(table: dict, plugin: Plugin) -> dict[str, dict] | None:
    """Every option a plugin of this section and name declares, or None for an unknown plugin."""
    entry = table["plugins"].get(f"{plugin.section}/{plugin.name}")
    if entry is None:
        return None
    options = {**table["common"]["all"], **table["common"][plugin.section]}
    for mixin in entry.get("mixins", []):
        options.update(table["mixins"][mixin]["options"])
    options.update(entry["options"])
    return options


def _scalar(value):
    """Logstash takes a one-element array where one value is wanted (validate_value)."""
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(f"expected one value, got {len(value)}")
        return value[0]
    return value


def check_value(value, validator, table: dict) -> None:
    """Raises ValueError when Logstash would refuse this value for this validator."""
    if validator is None:
        return
    if isinstance(value, str) and _ENV_WITHOUT_DEFAULT.search(value):
        return  # known only at run time (a secret without default): nothing to check here
    if isinstance(value, str):
        value = env_default(value)
    if isinstance(validator, dict) and "enum" in validator:
        one = _scalar(value)
        if not any(one == allowed and type(one) is type(allowed) for allowed in validator["enum"]):
            raise ValueError(f"expected one of {validator['enum']}, got {one!r}")
    elif isinstance(validator, dict) and "friendly_duration" in validator:
        friendly_duration_seconds(_scalar(value), validator["friendly_duration"])
    elif validator == ":boolean":
        if _scalar(value) not in ("true", "false", True, False):
            raise ValueError(f"expected boolean 'true' or 'false', got {value!r}")
    elif validator == ":number":
        one = _scalar(value)
        if isinstance(one, bool) or not _NUMBER.fullmatch(str(one)):
            raise ValueError(f"expected number, got {one!r}")
    elif validator in (":string", ":password", ":uri", "encoding", "sha_256_hex"):
        one = _scalar(value)
        if isinstance(one, dict | list):
            raise ValueError(f"expected one value, got {one!r}")
    elif validator == ":path":
        # Logstash also checks that it exists, on its own host: here it must be absolute.
        one = _scalar(value)
        if not (isinstance(one, str) and one.startswith("/")):
            raise ValueError(f"expected an absolute path, got {one!r}")
    elif validator == ":hash":
        if not (isinstance(value, dict) or (isinstance(value, list) and len(value) % 2 == 0)):
            raise ValueError(f"expected a hash, got {value!r}")
    elif validator == ":array":
        return
    elif validator == ":codec":
        name = _scalar(value)
        if f"codec/{name}" not in table["plugins"]:
            raise ValueError(f"unknown codec {name!r}")
    elif validator == "ecs_compatibility":
        if not re.fullmatch(r"disabled|v[1-9][0-9]?", str(_scalar(value))):
            raise ValueError(f"expected `disabled` or v1, v8 ..., got {value!r}")
    elif validator in ("dataset_identifier", "namespace_identifier"):
        one = str(_scalar(value))
        if not one or re.search(r"[\\/*?\"<>| ,#:]", one):
            raise ValueError(f"invalid identifier {one!r}")
    else:
        raise ValueError(f"no checker for validator {validator!r}")


def _register_problems(entry: dict, attrs: dict) -> list[str]:
    problems = []
    for check in entry.get("register_checks", []):
        if "hash_values" in check:
            for option, allowed in check["hash_values"].items():
                for key, kind in (attrs.get(option) or {}).items():
                    if kind not in allowed:
                        problems.append(f"{option}: {key} => {kind!r} is not one of {allowed}")
        if "min_items" in check:
            for option, count in check["min_items"].items():
                if option in attrs and len(attrs[option]) < count:
                    problems.append(f"{option} needs at least {count} items")
        if "exactly_one_of" in check:
            present = [o for o in check["exactly_one_of"] if o in attrs]
            if len(present) != 1:
                problems.append(f"exactly one of {check['exactly_one_of']} is needed")
        when = check.get("when", {})
        if when and all(attrs.get(k) in v for k, v in when.items()):
            if "requires" in check and check["requires"] not in attrs:
                problems.append(f"{check['requires']} is required with {when}")
            for option, wanted in check.get("requires_value", {}).items():
                if attrs.get(option, wanted) != wanted:
                    problems.append(f"{option} must be {wanted!r} with {when}")
    return problems


def option_problems(plugins: list[Plugin], table: dict | None = None) -> list[str]:
    """One line per problem Logstash would refuse: `<section>/<name> <id>: ...`."""
    table = table or option_table()
    problems = []
    for plugin in plugins:
        where = f"{plugin.section}/{plugin.name} {plugin.attrs.get('id', '(no id)')}"
        declared = declared_options(table, plugin)
        if declared is None:
            problems.append(f"{where}: plugin not in {OPTION_TABLE_PATH.name}")
            continue
        for name, value in plugin.attrs.items():
            spec = declared.get(name)
            if spec is None:
                problems.append(f"{where}: unknown option {name!r}")
                continue
            if spec.get("obsolete"):
                problems.append(f"{where}: {name!r} is obsolete ({spec['obsolete']})")
            values = value if spec.get("list") and isinstance(value, list) else [value]
            for one in values:
                try:
                    check_value(one, spec["validate"], table)
                except ValueError as error:
                    problems.append(f"{where}: {name} => {value!r}: {error}")
        for name, spec in declared.items():
            if spec.get("required") and name not in plugin.attrs:
                problems.append(f"{where}: required option {name!r} missing")
        entry = table["plugins"][f"{plugin.section}/{plugin.name}"]
        problems += [f"{where}: {p}" for p in _register_problems(entry, plugin.attrs)]
    return problems


def setting_problems(
    settings: dict, table: dict | None = None, pipeline: bool = False
) -> list[str]:
    """pipelines.yml entries (pipeline=True: only PIPELINE_SETTINGS_WHITE_LIST keys) and
    logstash.yml, against the settings Logstash registers."""
    table = table or option_table()
    types = table["settings"]["types"]
    problems = []
    for name, value in settings.items():
        if pipeline and name not in table["settings"]["pipeline"]:
            problems.append(f"{name}: not a pipeline setting (pipelines.yml refuses it)")
            continue
        kind = types.get(name)
        if kind is None:
            problems.append(f"{name}: not a Logstash setting")
            continue
        # Logstash substitutes ${VAR:default} before it validates: check the default.
        if isinstance(value, str):
            value = env_default(value)
        text = str(value).lower() if isinstance(value, bool) else str(value)
        ok = {
            "boolean": text in ("true", "false"),
            "positive_integer": text.isdigit() and int(text) > 0,
            "numeric": bool(_NUMBER.fullmatch(text)),
            "bytes": bool(re.fullmatch(r"\d+(b|kb|mb|gb|tb|pb)?", text.lower())),
            "enum": text in kind.get("values", []),
            "string": isinstance(value, str),
            "path": isinstance(value, str) and value.startswith("/"),
            "port_range": bool(re.fullmatch(r"\d+(-\d+)?", text)),
            "time_value": bool(re.fullmatch(r"-?\d+(nanos|micros|ms|s|m|h|d)?", text)),
        }[kind["type"]]
        if not ok:
            problems.append(f"{name}: {value!r} is not a valid {kind['type']}")
    return problems
