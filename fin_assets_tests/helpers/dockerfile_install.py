"""docker/Dockerfile read as data, and its `RUN pip ...` steps run for real in a fresh venv.

The venv stands in for the image's /usr/local: the same pip commands, in a build folder laid
out as the Dockerfile's COPY lines lay out WORKDIR. It is cached under ~/.cache/fin_assets,
keyed by the Dockerfile, the constraints file it installs with and the project's dependencies;
a warm run still re-runs the pip commands (everything is satisfied, so it takes seconds), so
the venv always holds exactly what the Dockerfile installs from the current tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fin_assets_tests.helpers.paths import CACHE_DIR

CACHE_ROOT = CACHE_DIR
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The image keeps pip's cache off (PIP_NO_CACHE_DIR) to stay small; here the download cache
# (~/.cache/pip, outside the clone) is what makes a cold CI run fast. Resolution is the same.
NOT_FOR_THE_TEST_VENV = {"PIP_NO_CACHE_DIR"}


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, ENV, RUN, COPY, ...
    value: str
    line: int  # where the instruction starts, 1-based


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and blank lines dropped."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        continued = line.endswith("\\")
        pending.append(line[:-1].strip() if continued else line)
        if not continued:
            joined = " ".join(part for part in pending if part)
            keyword, _, value = joined.partition(" ")
            instructions.append(Instruction(keyword.upper(), value.strip(), start))
            pending = []
    if pending:
        raise ValueError(f"Dockerfile line {start}: continuation runs past the end of the file")
    return instructions


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), value)


@dataclass
class Copy:
    sources: list[str]  # relative to the build context (the repo root)
    destination: str  # absolute container path
    into_folder: bool  # the destination is a folder that receives the sources
    line: int


@dataclass
class ImageRecipe:
    """What the Dockerfile says, in the terms the tests need."""

    base_image: str
    env: dict[str, str]
    workdir: str
    steps: list[Copy | tuple[str, int]]  # COPYs and RUN commands (shell form, line), in order
    entrypoint: list[str]
    cmd: list[str]

    @property
    def pip_commands(self) -> list[str]:
        return [c for c, _ in self.runs if c.split()[0] == "pip"]

    @property
    def runs(self) -> list[tuple[str, int]]:
        return [s for s in self.steps if isinstance(s, tuple)]

    @property
    def copies(self) -> list[Copy]:
        return [s for s in self.steps if isinstance(s, Copy)]

    @property
    def python_version(self) -> str:
        match = re.fullmatch(r"python:(\d+\.\d+)[\w.-]*", self.base_image)
        if not match:
            raise ValueError(f"FROM {self.base_image}: not an official python image")
        return match.group(1)


def read_recipe(dockerfile: Path) -> ImageRecipe:
    env: dict[str, str] = {}
    workdir = "/"
    steps: list[Copy | tuple[str, int]] = []
    base = ""
    entrypoint: list[str] = []
    cmd: list[str] = []
    for instruction in parse_dockerfile(dockerfile.read_text()):
        where = f"{dockerfile.name} line {instruction.line}"
        if instruction.keyword == "FROM":
            base = instruction.value.split()[0]
        elif instruction.keyword == "ENV":
            for pair in shlex.split(instruction.value):
                name, sep, value = pair.partition("=")
                if not sep:
                    raise ValueError(f"{where}: ENV {pair!r} is not NAME=value")
                env[name] = expand(value, env)
        elif instruction.keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / expand(instruction.value, env))
        elif instruction.keyword == "COPY":
            words = [expand(w, env) for w in shlex.split(instruction.value)]
            if any(w.startswith("--") for w in words):
                raise ValueError(f"{where}: COPY flags are not emulated: {instruction.value}")
            *sources, destination = words
            absolute = str(PurePosixPath(workdir) / destination)
            into = destination.endswith("/") or len(sources) > 1
            steps.append(Copy(sources, absolute, into, instruction.line))
        elif instruction.keyword == "RUN":
            steps.append((instruction.value, instruction.line))
        elif instruction.keyword in ("ENTRYPOINT", "CMD"):
            value = json.loads(instruction.value)
            if instruction.keyword == "ENTRYPOINT":
                entrypoint = value
            else:
                cmd = value
    return ImageRecipe(base, env, workdir, steps, entrypoint, cmd)


def placements(copy: Copy) -> list[tuple[str, str]]:
    """(source relative to the context, container path) for each source of a COPY."""
    if copy.into_folder:
        folder = PurePosixPath(copy.destination)
        return [(s, str(folder / PurePosixPath(s).name)) for s in copy.sources]
    return [(copy.sources[0], copy.destination)]


@dataclass
class InstalledVenv:
    path: Path
    cold: bool  # created from scratch (else reused from the cache)
    seconds: float
    pip_check: str

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def path_env(self) -> str:
        return f"{self.bin}:{SYSTEM_PATH}"


def cache_key(recipe: ImageRecipe, dockerfile: Path, context: Path) -> str:
    """The Dockerfile, every file its pip commands name (the constraints file) and the
    project's dependency list: what decides which packages the venv holds."""
    digest = hashlib.sha256(dockerfile.read_bytes())
    pyproject = context / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        digest.update(json.dumps(project.get("dependencies", [])).encode())
    named = {w for command in recipe.pip_commands for w in shlex.split(command)}
    for copy in recipe.copies:
        for source, target in placements(copy):
            relative = os.path.relpath(target, recipe.workdir)
            if relative in named and (context / source).is_file():
                digest.update((context / source).read_bytes())
    return digest.hexdigest()[:16]


def lay_out_workdir(recipe: ImageRecipe, context: Path, build_dir: Path) -> None:
    """WORKDIR as it is when the pip commands run: the COPYs before the first pip RUN."""
    for step in recipe.steps:
        if isinstance(step, tuple):
            if step[0].split()[0] == "pip":
                return
            continue
        for source, target in placements(step):
            relative = os.path.relpath(target, recipe.workdir)
            if relative.startswith(".."):
                raise ValueError(f"COPY line {step.line}: {target} is outside WORKDIR")
            destination = build_dir / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            if (context / source).is_dir():
                shutil.copytree(
                    context / source, destination, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(context / source, destination)


def install_like_the_image(dockerfile: Path, context: Path) -> InstalledVenv:
    """The Dockerfile's pip commands in a venv (cached), then `pip check` once more."""
    recipe = read_recipe(dockerfile)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if recipe.python_version != here:
        raise RuntimeError(
            f"{dockerfile}: FROM {recipe.base_image} needs Python {recipe.python_version}, "
            f"this machine runs {here}"
        )
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    venv = CACHE_ROOT / f"docker-venv-{cache_key(recipe, dockerfile, context)}"
    started = time.monotonic()
    with (CACHE_ROOT / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions never build the same venv at once
        cold = not (venv / ".complete").is_file()
        if cold:
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        env = {
            "PATH": f"{venv / 'bin'}:{SYSTEM_PATH}",
            "HOME": str(Path.home()),
            "LANG": "C.UTF-8",
            **{k: v for k, v in recipe.env.items() if k not in NOT_FOR_THE_TEST_VENV},
        }
        with tempfile.TemporaryDirectory(prefix="fin-docker-build-") as build:
            lay_out_workdir(recipe, context, Path(build))
            for command in recipe.pip_commands:
                result = subprocess.run(
                    ["sh", "-c", command], cwd=build, env=env, capture_output=True, text=True,
                    timeout=900, check=False,
                )  # fmt: skip
                if result.returncode != 0:
                    with contextlib.suppress(FileNotFoundError):
                        (venv / ".complete").unlink()
                    raise RuntimeError(
                        f"{dockerfile.name}: `{command}` failed (exit {result.returncode}):\n"
                        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
                    )
        check = subprocess.run(
            [str(venv / "bin" / "pip"), "check"], env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        if check.returncode != 0:
            raise RuntimeError(f"pip check in the image's venv failed:\n{check.stdout}")
        (venv / ".complete").touch()
    if cold:
        remove_stale_venvs(keep=venv)
    return InstalledVenv(venv, cold, time.monotonic() - started, check.stdout.strip())


def remove_stale_venvs(keep: Path) -> None:
    """Venvs of older keys (about 450 MB each), unless another session holds their lock."""
    for other in CACHE_ROOT.glob("docker-venv-*"):
        if other == keep or not other.is_dir():
            continue
        with (CACHE_ROOT / f"{other.name}.lock").open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(other, ignore_errors=True)
