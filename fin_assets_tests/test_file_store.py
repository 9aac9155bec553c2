"""The file store on real files: what it refuses (a link out of the folder, a directory, a
FIFO or socket where a file belongs, a file where a folder belongs, damaged JSON), each named
with the path and the problem, and the logs it never opens through a link.

Root ignores permission bits, so "cannot be read" is exercised with a FIFO and a socket:
files that a plain open() blocks on or cannot open, whoever runs it.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from fin_assets.lib.file_store import DataFolder, StoredFileError
from fin_assets_tests.helpers.blocking import within

OUTSIDE = b"outside the data folder: must stay as it is\n"


@pytest.fixture
def data(tmp_path: Path) -> DataFolder:
    root = tmp_path / "data"
    root.mkdir()
    return DataFolder(root)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "target.csv"
    path.parent.mkdir()
    path.write_bytes(OUTSIDE)
    return path


@pytest.fixture
def short_dir():
    """A folder with a short path: a Unix socket's path must fit in 108 bytes."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fs", dir="/tmp") as name:
        yield Path(name)


def make(path: Path, how: str, outside: Path) -> list:
    """Puts `how` at `path`; returns what must stay open (a bound socket)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "directory":
        path.mkdir()
    elif how == "fifo":
        os.mkfifo(path)
    elif how == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        return [server]
    elif how == "symlink_outside":
        path.symlink_to(outside)
    elif how == "symlink_dotdot":  # relative, through ..: the same escape, spelled otherwise
        path.symlink_to(os.path.relpath(outside, path.parent))
    else:
        raise AssertionError(how)
    return []


NOT_A_FILE = {
    "directory": "is a directory where a file belongs",
    "fifo": "is a FIFO (named pipe), not a regular file",
    "socket": "is a socket, not a regular file",
    "symlink_outside": "leads through a symlink to",
    "symlink_dotdot": "leads through a symlink to",
}


class TestWhatIsNotAFileIsNamed:
    """Every damage x every operation: read, atomic replace, JSON read."""

    @pytest.mark.parametrize("how", list(NOT_A_FILE))
    @pytest.mark.parametrize("operation", ["read_bytes", "read_json", "write_atomically"])
    def test_the_path_and_the_problem_are_named(self, short_dir, outside, how, operation):
        store = DataFolder(short_dir)
        path = short_dir / "history" / "TSLA.csv"
        keep = make(path, how, outside)
        try:
            run = {
                "read_bytes": lambda: store.read_bytes(path),
                "read_json": lambda: store.read_json(path),
                "write_atomically": lambda: store.write_atomically(path, "fecha\n"),
            }[operation]
            with pytest.raises(StoredFileError) as raised:
                within(30, run, short_dir)
        finally:
            for item in keep:
                item.close()
        assert raised.value.path == path
        assert str(raised.value).startswith(f"{path}: {NOT_A_FILE[how]}")
        assert outside.read_bytes() == OUTSIDE  # never written through
        assert os.path.lexists(path)  # never replaced: left for a person to see
        assert sorted(p.name for p in path.parent.iterdir()) == ["TSLA.csv"]  # no temp left


class TestAFolderThatIsNotAFolder:
    @pytest.mark.parametrize("how", ["file", "fifo", "symlink_outside"])
    def test_writing_below_it_names_the_folder(self, data, outside, how):
        folder = data.path("raw", "TSLA")
        folder.parent.mkdir()
        if how == "file":
            folder.write_text("not a folder\n")
        elif how == "fifo":
            os.mkfifo(folder)
        else:
            folder.symlink_to(outside.parent, target_is_directory=True)
        path = folder / "TSLA_1.json"
        with pytest.raises(StoredFileError) as raised:
            within(30, lambda: data.write_atomically(path, "{}"), data.root)
        if how == "symlink_outside":
            assert str(raised.value).startswith(f"{path}: leads through a symlink to")
        else:
            kind = "a regular file" if how == "file" else "a FIFO (named pipe)"
            needed = f"where a folder belongs (needed for {path})"
            assert str(raised.value) == f"{folder}: is {kind} {needed}"
            with pytest.raises(StoredFileError, match="where a folder belongs"):
                data.list(folder, "*.json")
        assert sorted(p.name for p in outside.parent.iterdir()) == ["target.csv"]

    def test_a_data_folder_that_is_a_file(self, tmp_path):
        root = tmp_path / "data"
        root.write_text("x")
        with pytest.raises(StoredFileError, match=f"^{root}: is a file where a folder belongs"):
            DataFolder(root).write_atomically(root / "Datos_financieros.csv", "x")


def test_a_link_that_stays_inside_the_folder_is_followed_and_kept(data):
    target = data.path("history", "real.csv")
    target.parent.mkdir()
    target.write_text("old\n")
    link = data.path("Datos_financieros.csv")
    link.symlink_to("history/real.csv")
    assert data.read_text(link) == "old\n"
    assert data.write_atomically(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"  # the link still leads there


def test_a_missing_file_or_folder_reads_as_none_and_lists_empty(data):
    assert data.read_bytes(data.path("history", "TSLA.csv")) is None
    assert data.list(data.path("raw", "TSLA"), "*.json") == []
    with pytest.raises(StoredFileError, match="does not exist"):
        data.read_json(data.path("raw", "TSLA", "x.json"))


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('{"Meta Data": {"1. Information": "Daily Prices"', 1, "truncated JSON"),
        ('{\n "Time Series (Daily)": {\n  "2026-10-05": {"1. open": "2', 3, "truncated JSON"),
        ('{"a": 1,, "b": 2}', 1, "corrupt JSON"),
        ("", 1, "truncated JSON"),
    ],
    ids=["cut-in-object", "cut-in-string", "double-comma", "empty"],
)
def test_damaged_json_names_file_line_and_kind(data, text, line, reason):
    path = data.path("raw", "TSLA", "TSLA_1.json")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(StoredFileError) as raised:
        data.read_json(path)
    assert (raised.value.path, raised.value.line) == (path, line)
    assert str(raised.value).startswith(f"{path} line {line}: {reason}")


def test_bytes_that_are_not_utf8_name_the_line(data):
    path = data.path("history", "TSLA.csv")
    path.parent.mkdir()
    path.write_bytes(b"fecha\n2026-10-05\n\xff\xfe\n")
    with pytest.raises(StoredFileError, match=f"^{path} line 3: not UTF-8 text$"):
        data.read_text(path)


class TestLogsAreNeverOpenedThroughALink:
    @pytest.mark.parametrize("where", ["outside", "inside"])
    def test_a_symlinked_log_is_refused_and_its_target_unchanged(self, data, outside, where):
        target = outside if where == "outside" else data.path("other.log")
        if where == "inside":
            target.write_bytes(OUTSIDE)
        log = data.path("extraccion_finanzas.log")
        log.symlink_to(target)
        with pytest.raises(StoredFileError, match=f"^{log}: is a symlink: not followed$"):
            data.append(log, b"a line\n")
        assert target.read_bytes() == OUTSIDE

    @pytest.mark.parametrize(
        ("how", "reason"),
        [
            ("directory", "is a directory where a file belongs"),
            ("fifo", "is a FIFO (named pipe), not a regular file"),
        ],
    )
    def test_a_log_that_is_not_a_file_is_named(self, data, outside, how, reason):
        log = data.path("logs_transacciones.log")
        make(log, how, outside)
        with pytest.raises(StoredFileError, match=f"^{re.escape(f'{log}: {reason}')}$"):
            within(30, lambda: data.append(log, b"a line\n"), data.root)

    def test_a_fifo_with_a_reader_is_refused_too(self, data):
        """With a reader the open succeeds; writing there would feed a pipe, not a log."""
        log = data.path("logs_transacciones.log")
        os.mkfifo(log)
        reader = os.open(log, os.O_RDONLY | os.O_NONBLOCK)
        try:
            with pytest.raises(StoredFileError, match="is a FIFO .named pipe., not a regular"):
                data.open_append(log)
        finally:
            os.close(reader)

    def test_appends_land_at_the_end_and_create_the_file_0644(self, data):
        log = data.path("extraccion_finanzas.log")
        data.append(log, b"one\n")
        data.append(log, b"two\n")
        assert log.read_bytes() == b"one\ntwo\n"
        assert oct(log.stat().st_mode & 0o777) == oct(0o644)


# -- the other readers of the data folder go through the store ------------------------------

CSV_TEXT = "fecha,simbolo,apertura,maximo,minimo,cierre,volumen\n2026-05-05,TSLA,1,1,1,260.25,10\n"


@pytest.mark.parametrize("how", ["symlink_outside", "fifo", "directory"])
def test_simulator_start_prices_never_read_a_csv_that_is_not_a_file_inside(data, tmp_path, how):
    """A link out of the folder is not read (its prices would seed the feed), a FIFO does
    not hang the start, a directory is named; the feed starts from the default price."""
    from fin_assets.lib.simulator.prices import DEFAULT_START_PRICE, start_prices

    outside = tmp_path / "outside.csv"
    outside.write_text(CSV_TEXT)
    csv_path = data.path("Datos_financieros.csv")
    make(csv_path, how, outside)
    messages: list[tuple[str, str]] = []
    prices = within(
        30, lambda: start_prices(["TSLA"], csv_path, log=lambda *m: messages.append(m)), data.root
    )
    assert prices == {"TSLA": DEFAULT_START_PRICE}
    assert [level for level, _ in messages] == ["warning"]
    assert messages[0][1].startswith(f"Start prices not read: {csv_path}: {NOT_A_FILE[how]}")
    assert outside.read_text() == CSV_TEXT


def test_the_search_check_never_reads_a_csv_linked_out_of_the_folder(data, tmp_path):
    from fin_assets.lib.search.reconcile import summarise_csv

    outside = tmp_path / "outside.csv"
    outside.write_text(CSV_TEXT)
    csv_path = data.path("Datos_financieros.csv")
    csv_path.symlink_to(outside)
    with pytest.raises(StoredFileError, match="leads through a symlink to .*: not followed"):
        summarise_csv(csv_path)
    csv_path.unlink()
    csv_path.write_text(CSV_TEXT)
    assert summarise_csv(csv_path)["TSLA"].last_close == 260.25
