"""The one way the product reads and writes its files under `$FIN_DATA_DIR`.

Guarantees, whoever calls it (batch assets, extraction log, simulator, search checks):

- Nothing is read or written through a symlink that leaves the folder. A link that stays
  inside it is followed; one that leaves is refused, naming the link and its target.
- Every path is opened component by component from the folder with `O_NOFOLLOW`, so a link
  swapped in after the check makes the open fail instead of redirecting it.
- What is not a regular file where a file belongs (a directory, a FIFO that would block the
  reader, a socket), a folder that is a file, a file that is not UTF-8 or not JSON: each raises
  `StoredFileError` naming the path and the problem; never a bare traceback.
- Replacements are atomic (a temp file in the same folder, fsync, rename): a reader sees the
  old file or the new one. Identical content is not rewritten.
- Append-only logs refuse any symlink as the log itself (`O_NOFOLLOW`), inside or outside.

The callers decide what a problem means: a symbol's file quarantines that symbol, a run-level
file (the CSV, the extraction log) fails the run with the error's text.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not hang the run waiting for a writer (or reader).
_FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class StoredFileError(ValueError):
    """A stored file that cannot be read or written; names the file, the line if any, and
    the problem."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path} line {line}" if line else str(path)
        super().__init__(f"{where}: {reason}")


def kind_of(mode: int) -> str:
    """`st_mode` in words, for messages: 'a directory', 'a FIFO (named pipe)'..."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "a regular file"


def not_a_file(mode: int) -> str:
    what = kind_of(mode)
    if stat.S_ISDIR(mode):
        return f"is {what} where a file belongs"
    return f"is {what}, not a regular file"


def decode_utf8(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise StoredFileError(path, line, "not UTF-8 text") from None


def parse_json(text: str, path: Path) -> Any:
    """The JSON document in `text`; a cut-off or damaged one raises `StoredFileError` saying
    which (a truncated download or disk-full write ends the text inside the document)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        # Cut off: the parser ran out of text (an unterminated string runs to the end too).
        ran_out = error.pos >= len(text.rstrip())
        truncated = ran_out or error.msg.startswith("Unterminated string")
        what = "truncated JSON (the text ends inside the document)" if truncated else "corrupt JSON"
        reason = f"{what}: {error.msg} column {error.colno}"
        raise StoredFileError(path, error.lineno, reason) from None


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


class DataFolder:
    """Every file under `root` (normally `$FIN_DATA_DIR`). Paths are given as `root / ...`."""

    def __init__(self, root: Path) -> None:
        self.given = Path(root)
        # The folder itself may be reached through a link (e.g. /data -> /mnt/disk/data).
        self.root = Path(os.path.realpath(root))

    def path(self, *parts: str) -> Path:
        return self.given.joinpath(*parts)

    # -- where a path really leads ---------------------------------------------------------

    def _parts_inside(self, path: Path, *, follow_last: bool = True) -> tuple[str, ...]:
        """The components, below the real root, that `path` really leads to; raises if a
        symlink takes it out of the folder. `follow_last=False` keeps a final link as is."""
        path = Path(path)
        if not path.is_absolute():
            path = self.given / path
        if follow_last:
            real = Path(os.path.realpath(path))
        else:
            real = Path(os.path.realpath(path.parent)) / path.name
        try:
            return real.relative_to(self.root).parts
        except ValueError:
            raise StoredFileError(
                path, None, f"leads through a symlink to {real}, outside {self.root}: not followed"
            ) from None

    def _open_dir(self, path: Path, parts: tuple[str, ...], *, create: bool) -> int | None:
        """An fd on the folder `root/parts`, walked one component at a time without following
        links; None when it does not exist and `create` is False."""
        if create:
            try:
                os.makedirs(self.root, exist_ok=True)
            except FileExistsError:
                raise StoredFileError(self.root, None, "is a file where a folder belongs") from None
        try:
            fd = os.open(self.root, _DIR_FLAGS)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise StoredFileError(self.root, None, "is a file where a folder belongs") from None
        done = self.root
        try:
            for part in parts:
                done = done / part
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    os.close(fd)
                    return None
                except OSError as error:
                    raise self._dir_problem(path, done, error) from None
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _dir_problem(self, path: Path, folder: Path, error: OSError) -> StoredFileError:
        if error.errno == errno.ENOTDIR:
            try:
                what = kind_of(os.lstat(folder).st_mode)
            except OSError:
                what = "a file"
            reason = f"is {what} where a folder belongs"
        elif error.errno == errno.ELOOP:
            reason = "became a symlink while being opened: not followed"
        else:
            reason = f"cannot be opened as a folder: {error.strerror}"
        return StoredFileError(folder, None, f"{reason} (needed for {path})")

    def _problem(self, path: Path, error: OSError, doing: str) -> StoredFileError:
        if error.errno == errno.ELOOP:
            return StoredFileError(path, None, "is a symlink: not followed")
        if error.errno in (errno.EISDIR, errno.ENXIO):  # ENXIO: a socket, a FIFO with no reader
            try:
                return StoredFileError(path, None, not_a_file(os.lstat(path).st_mode))
            except OSError:
                pass
        return StoredFileError(path, None, f"cannot be {doing}: {error.strerror}")

    # -- reading ---------------------------------------------------------------------------

    def read_bytes(self, path: Path) -> bytes | None:
        """The file's bytes; None when there is no such file. Raises `StoredFileError` for
        a link out of the folder, a directory, a FIFO, a socket, a device."""
        path = Path(path)
        parts = self._parts_inside(path)
        if not parts:
            raise StoredFileError(path, None, "is a directory where a file belongs")
        dir_fd = self._open_dir(path, parts[:-1], create=False)
        if dir_fd is None:
            return None
        fd = None
        try:
            try:
                fd = os.open(parts[-1], os.O_RDONLY | _FILE_FLAGS, dir_fd=dir_fd)
            except FileNotFoundError:
                return None
            except OSError as error:
                raise self._problem(path, error, "read") from None
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise StoredFileError(path, None, not_a_file(mode))
            chunks = []
            try:
                while chunk := os.read(fd, 1 << 20):
                    chunks.append(chunk)
            except OSError as error:
                raise self._problem(path, error, "read") from None
            return b"".join(chunks)
        finally:
            _close(fd)
            os.close(dir_fd)

    def read_text(self, path: Path) -> str | None:
        data = self.read_bytes(path)
        return None if data is None else decode_utf8(data, Path(path))

    def read_json(self, path: Path) -> Any:
        """The stored JSON document; `StoredFileError` when missing, unreadable or damaged."""
        text = self.read_text(path)
        if text is None:
            raise StoredFileError(Path(path), None, "does not exist")
        return parse_json(text, Path(path))

    def list(self, folder: Path, pattern: str) -> list[Path]:
        """The names in `folder` matching `pattern`, sorted, as `folder / name`; [] when the
        folder does not exist."""
        folder = Path(folder)
        parts = self._parts_inside(folder)
        fd = self._open_dir(folder, parts, create=False)
        if fd is None:
            return []
        try:
            names = os.listdir(fd)
        finally:
            os.close(fd)
        return [folder / name for name in sorted(fnmatch.filter(names, pattern))]

    # -- writing ---------------------------------------------------------------------------

    def write_atomically(self, path: Path, data: bytes | str) -> bool:
        """Replace `path` with `data` through a temp file in the same folder and a rename, so
        a reader (Logstash) sees the old file or the new one, never half of one. Returns False
        and leaves the file untouched when it already holds exactly `data`. Something that is
        not a regular file at `path` is never replaced: that raises `StoredFileError`."""
        path = Path(path)
        data = data.encode() if isinstance(data, str) else data
        parts = self._parts_inside(path)
        if not parts:
            raise StoredFileError(path, None, "is a directory where a file belongs")
        dir_fd = self._open_dir(path, parts[:-1], create=True)
        assert dir_fd is not None  # created
        name = parts[-1]
        temp = f".{name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            if self._holds(path, dir_fd, name, data):
                return False
            try:
                fd = os.open(
                    temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS, 0o644, dir_fd=dir_fd
                )
            except OSError as error:
                raise self._problem(path, error, "written") from None
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                    os.fchmod(handle.fileno(), 0o644)  # whatever the umask: Logstash reads it
                os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException as error:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp, dir_fd=dir_fd)
                if isinstance(error, OSError):
                    raise self._problem(path, error, "written") from None
                raise
            return True
        finally:
            os.close(dir_fd)

    def _holds(self, path: Path, dir_fd: int, name: str, data: bytes) -> bool:
        """Whether the file already holds `data`; raises if what is there is not a file."""
        try:
            fd = os.open(name, os.O_RDONLY | _FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return False
        except OSError as error:
            raise self._problem(path, error, "replaced") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StoredFileError(path, None, not_a_file(info.st_mode) + ": not replaced")
            if info.st_size != len(data):
                return False
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks) == data
        finally:
            os.close(fd)

    def open_append(self, path: Path) -> int:
        """An fd appending to the log `path` (created 0644 if missing). The log itself is never
        a link (`O_NOFOLLOW`): a symlink there, even to a file inside the folder, is refused and
        its target left as it was; so are a directory, a FIFO and a socket. A character device
        (/dev/null) is accepted: writing to it reaches no other file."""
        path = Path(path)
        parts = self._parts_inside(path, follow_last=False)
        dir_fd = self._open_dir(path, parts[:-1], create=True)
        assert dir_fd is not None  # created
        try:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _FILE_FLAGS
            fd = os.open(parts[-1], flags, 0o644, dir_fd=dir_fd)
        except OSError as error:
            raise self._problem(path, error, "opened for appending") from None
        finally:
            os.close(dir_fd)
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
            os.close(fd)
            raise StoredFileError(path, None, not_a_file(mode))
        # Blocking again: a device or a full disk must report, not return EAGAIN.
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return fd

    def append(self, path: Path, data: bytes) -> None:
        """Append `data` to the log `path` (opened as `open_append` does) and close it."""
        fd = self.open_append(path)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as error:
            raise self._problem(Path(path), error, "written") from None
        finally:
            os.close(fd)


def folder_of(path: Path) -> DataFolder:
    """The folder holding `path`, for a caller given only a file's path (a log, the CSV)."""
    return DataFolder(Path(path).parent)
