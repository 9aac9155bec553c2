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

REPO = Path(__file__).resolve().parents[1]
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
    cache = Path(os.environ.get("FIN_CACHE_DIR", Path.home() / ".cache" / "fin_assets"))
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


def run_ruby_filters(
    cases: list[tuple[list[Plugin], dict]], timeout: float = 300
) -> list[dict]:
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
