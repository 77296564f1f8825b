"""The output folder: always one whole run, the new one or the one before it.

A run writes every file into a staging folder *beside* ``--out`` (same parent,
so the same filesystem), then swaps the two folders in one step with Linux's
``renameat2(RENAME_EXCHANGE)`` and removes the old one. A kill at any moment
therefore leaves ``--out`` holding the previous complete run or the new one,
never a mix, and a rerun never keeps stale files (the folder is replaced
whole). Where the exchange is not available (not Linux, or a filesystem that
refuses it) the swap is two renames, and a run killed between them is rolled
back by the next run (the previous report is renamed back).

What tsreport writes is listed in the folder's manifest, ``.tsreport-run.json``.
Anything else found in ``--out`` (a user's notes, files of an older run that
tsreport did not write) is carried over into the new folder as hard links, so a
run never deletes a file tsreport did not write. A non-empty folder that holds
no earlier tsreport run is refused unless ``--force``.

One run per folder at a time: a :mod:`filelock` lock beside the folder
(``.NAME.tsreport.lock``). Staging folders are named
``.NAME.tsreport-<pid>-<process start>-<host>-<random>``, so the next run can
tell that their owner is gone and remove them, and a run that cannot get the
lock can say which process holds the folder.

Every change to the disk goes through :data:`FS` (an instance of
:class:`FileSystem`), which the fault-injection tests wrap to kill the process
or raise ENOSPC at each step.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errno_codes
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tsreport import __version__
from tsreport.exceptions import OutputError, UsageError

MANIFEST = ".tsreport-run.json"
# Files and folders older tsreport versions wrote without a manifest.
_LEGACY_NAMES = ("results.json", "report.html", "report.pdf", "figures")
# Scratch names inside --out from older versions: never a user's file, never carried over.
_LEGACY_SCRATCH = re.compile(r"^\.tsreport-(tmp-|check-|previous$)")
# Marks the previous run while the two-rename fallback swap has it aside.
PREVIOUS_MARK = ".tsreport-previous"
_STAGING = re.compile(r"^(?P<pid>\d+)-(?P<start>\d+)-(?P<host>[0-9a-f]{8})-[0-9a-z]+$")
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _errno_text(error: OSError) -> str:
    name = errno_codes.errorcode.get(error.errno or 0, "")
    text = error.strerror or str(error)
    return f"{text} [{name}]" if name else text


class FileSystem:
    """Every change tsreport makes to the disk, one method per step (fault-injection tests wrap these)."""

    def __init__(self) -> None:
        self._renameat2: Any = None
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                libc = ctypes.CDLL(None, use_errno=True)
                function = libc.renameat2
                function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
                function.restype = ctypes.c_int
                self._renameat2 = function

    def mkdir(self, path: Path) -> None:
        path.mkdir()

    def write(self, path: Path, data: bytes) -> None:
        """Write and fsync a new file, so that a power cut after the swap cannot leave it empty."""
        with open(path, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def carry(self, source: Path, target: Path) -> None:
        """Put a user's file into the new folder: a hard link (no copy, no space), else a copy."""
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
            return
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)

    def exchange(self, first: Path, second: Path) -> bool:
        """Swap two folders atomically; False where this system or filesystem cannot."""
        if self._renameat2 is None:
            return False
        if self._renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
            return True
        code = ctypes.get_errno()
        if code in (errno_codes.EINVAL, errno_codes.ENOSYS, errno_codes.ENOTSUP, errno_codes.EOPNOTSUPP):
            return False
        raise OSError(code, os.strerror(code), str(second))

    def rename(self, source: Path, target: Path) -> None:
        os.rename(source, target)

    def remove_tree(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def sync_folder(self, path: Path) -> None:
        """fsync a folder, so that the renames in it survive a power cut (where the OS allows it)."""
        with contextlib.suppress(OSError):
            handle = os.open(path, os.O_RDONLY)
            try:
                os.fsync(handle)
            finally:
                os.close(handle)


FS = FileSystem()


def _process_start(pid: int) -> int:
    """The process's start time in clock ticks since boot (0 where /proc is absent): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _owner_alive(pid: int, start: int, host: str) -> bool:
    """Whether the process that made a staging folder may still run (unknown: assume it does)."""
    if host != _host_tag():
        return True  # another machine's process: we cannot tell, so leave its folder alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    current = _process_start(pid)
    return not (start and current and current != start)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OutputFolder:
    """``--out``: checked, locked and cleaned before the run; replaced whole by :meth:`commit`.

    Parameters
    ----------
    out : the folder as the user gave it.
    inputs : the run's input files; ``--out`` may not be a folder holding one of them.
    force : write into a non-empty folder that holds no earlier tsreport run (its files are kept).
    lock_timeout : seconds to wait for another run holding the folder (0: do not wait).
    """

    def __init__(
        self,
        out: str | Path,
        *,
        inputs: tuple[str | Path, ...] = (),
        force: bool = False,
        lock_timeout: float = 0.0,
        option: str = "--out",
    ) -> None:
        self.shown = str(out)
        self.option = option
        self.inputs = inputs
        self.force = force
        self.lock_timeout = lock_timeout
        self.path = Path(out)
        self.staging: Path | None = None
        self._lock: Any = None

    # -- before the run ---------------------------------------------------------------------------------

    def _check_path(self) -> None:
        if not self.shown.strip():
            raise UsageError(f"Invalid {self.option} '': give a folder name, e.g. {self.option} tsreport-report.")
        try:
            resolved = self.path.resolve()
        except (OSError, RuntimeError) as error:
            raise OutputError(f"Cannot use {self.option} {self.shown}: {error}. Choose another folder.") from None
        fix = f"the report replaces the whole folder. Give a folder of its own, e.g. {self.option} tsreport-report."
        cwd = Path.cwd().resolve()
        if resolved == cwd or resolved in cwd.parents:
            what = "the current folder" if resolved == cwd else "a parent of the current folder"
            raise UsageError(f"Invalid {self.option} '{self.shown}': it is {what}, and {fix}")
        for item in self.inputs:
            source = Path(item).resolve()
            if resolved == source:
                raise UsageError(
                    f"Invalid {self.option} '{self.shown}': it is the input {item}; give a folder of its own."
                )
            if resolved in source.parents:
                raise UsageError(f"Invalid {self.option} '{self.shown}': it holds the input {item}, and {fix}")
        if resolved.parent == resolved:
            raise UsageError(f"Invalid {self.option} '{self.shown}': the root folder cannot be replaced.")
        # Swap the folder the user means, not a symlink pointing at it.
        self.path = resolved
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"Output path {self.shown} exists and is not a folder; choose another {self.option}.")

    def _prefix(self) -> str:
        return f".{self.path.name}.tsreport-"

    def _stagings(self) -> Iterator[tuple[Path, int, int, str]]:
        prefix = self._prefix()
        try:
            entries = list(self.path.parent.iterdir())
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(prefix):
                match = _STAGING.match(entry.name[len(prefix) :])
                if match and entry.is_dir() and not entry.is_symlink():
                    yield entry, int(match["pid"]), int(match["start"]), match["host"]

    def holder(self) -> str:
        """Who holds the folder, for the lock-timeout message."""
        for _, pid, _, host in self._stagings():
            if pid != os.getpid():
                where = "" if host == _host_tag() else " on another machine"
                return f"tsreport process {pid}{where}"
        return "another tsreport process"

    def _acquire(self) -> None:
        import filelock

        lock_path = self.path.parent / f".{self.path.name}.tsreport.lock"
        self._lock = filelock.FileLock(str(lock_path))
        try:
            self._lock.acquire(timeout=self.lock_timeout)
        except filelock.Timeout:
            self._lock = None
            waited = f"waited {self.lock_timeout:g} s" if self.lock_timeout > 0 else "did not wait"
            raise OutputError(
                f"{self.option} {self.shown} is in use by {self.holder()} ({waited}). Let that run finish, "
                f"or pass --lock-timeout SECONDS to wait for it."
            ) from None
        except OSError as error:
            self._lock = None
            raise OutputError(
                f"Cannot lock {self.option} {self.shown} ({lock_path}: {_errno_text(error)}). "
                f"Choose a writable {self.option}."
            ) from None

    def _clean_dead(self) -> None:
        """Remove staging folders whose process is gone; undo a two-rename swap that a kill cut in half."""
        dead = [entry for entry, pid, start, host in self._stagings() if not _owner_alive(pid, start, host)]
        if not self.path.exists():
            # Killed between the two renames of the fallback swap: the previous run waits in a
            # staging folder marked as such; put it back.
            previous = [entry for entry in dead if (entry / MANIFEST).is_file() and (entry / PREVIOUS_MARK).is_file()]
            if previous:
                FS.rename(previous[0], self.path)
                with contextlib.suppress(OSError):
                    (self.path / PREVIOUS_MARK).unlink()
                dead.remove(previous[0])
        for entry in dead:
            FS.remove_tree(entry)

    def _owned(self) -> set[str] | None:
        """Relative paths of the files tsreport wrote in ``--out``; None when it holds no tsreport run."""
        manifest = self.path / MANIFEST
        if manifest.is_file():
            try:
                files = json.loads(manifest.read_bytes()[: 1 << 22]).get("files", {})
            except (OSError, ValueError, AttributeError):
                files = None
            if isinstance(files, dict):
                return {MANIFEST, *map(str, files)}
        results = self.path / "results.json"
        if results.is_file():  # a run of a tsreport without manifests
            try:
                with open(results, "rb") as handle:
                    head = handle.read(4096)
            except OSError:
                head = b""
            if b'"tsreport_version"' in head:
                owned = {name for name in _LEGACY_NAMES[:3] if (self.path / name).is_file()}
                figures = self.path / "figures"
                if figures.is_dir():
                    owned |= {f"figures/{p.name}" for p in figures.iterdir() if p.suffix == ".svg" and p.is_file()}
                return owned
        return None

    def _foreign(self, owned: set[str]) -> list[str]:
        """Paths in ``--out`` that tsreport did not write (files, symlinks and empty folders)."""
        foreign: list[str] = []
        for root, folders, files in os.walk(self.path):
            relative_root = Path(root).relative_to(self.path)
            for name in sorted(files) + sorted(f for f in folders if Path(root, f).is_symlink()):
                relative = (relative_root / name).as_posix()
                if relative not in owned and not _LEGACY_SCRATCH.match(name):
                    foreign.append(relative)
            folders[:] = sorted(f for f in folders if not Path(root, f).is_symlink() and not _LEGACY_SCRATCH.match(f))
            if not files and not folders and relative_root != Path("."):
                if not any(o.startswith(relative_root.as_posix() + "/") for o in owned):
                    foreign.append(relative_root.as_posix() + "/")
        return foreign

    def prepare(self) -> None:
        """Check ``--out``, take its lock, remove dead staging, refuse a user's folder; make the staging folder."""
        self._check_path()
        if not self.path.parent.is_dir():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise OutputError(
                    f"Cannot create the output folder {self.shown}: {_errno_text(error)}. Choose a writable "
                    f"{self.option}."
                ) from None
        self._acquire()
        try:
            self._clean_dead()
            if self.path.is_dir() and not self.force and self._owned() is None:
                foreign = self._foreign(set())
                if foreign:
                    shown = ", ".join(f"'{name}'" for name in foreign[:3])
                    more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
                    raise OutputError(
                        f"{self.option} {self.shown} is not empty ({shown}{more}) and holds no earlier tsreport run. "
                        f"Choose a new or empty folder, or pass --force to write the report there (its files are "
                        f"kept)."
                    )
            token = secrets.token_hex(4)
            name = f"{self._prefix()}{os.getpid()}-{_process_start(os.getpid())}-{_host_tag()}-{token}"
            self.staging = self.path.parent / name
            try:
                FS.mkdir(self.staging)
            except OSError as error:
                self.staging = None
                intact = f" The previous report in {self.shown} is intact." if self.path.is_dir() else ""
                raise OutputError(
                    f"Cannot write beside the output folder {self.shown} ({self.path.parent}: {_errno_text(error)})."
                    f"{intact} Free space or choose a writable {self.option}."
                ) from None
        except BaseException:
            self.release()
            raise

    # -- after the run ----------------------------------------------------------------------------------

    def commit(self, files: Mapping[str, bytes]) -> list[Path]:
        """Write ``files`` (relative path -> bytes) and swap them in as ``--out``; return the final paths.

        On any error the staging folder is removed and ``--out`` is left as it was.
        """
        if self.staging is None:
            raise RuntimeError("OutputFolder.prepare() was not called")
        staging = self.staging
        current = ""
        try:
            for relative, data in files.items():
                current = relative
                target = staging / relative
                for parent in reversed(target.relative_to(staging).parents[:-1]):
                    if not (staging / parent).is_dir():
                        FS.mkdir(staging / parent)
                FS.write(target, data)
            current = MANIFEST
            manifest = {
                "tsreport_version": __version__,
                "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
            }
            FS.write(staging / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
            if self.path.is_dir():
                owned = self._owned() or set()
                for relative in self._foreign(owned):
                    current = relative
                    if relative.rstrip("/") in files or (staging / relative).exists():
                        continue  # --force: our file of that name replaces the user's
                    if relative.endswith("/"):
                        (staging / relative).mkdir(parents=True, exist_ok=True)
                        continue
                    (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                    FS.carry(self.path / relative, staging / relative)
            current = ""
            FS.sync_folder(staging)
            with _signals_deferred():
                self._swap(staging)
        except OSError as error:
            where = self.path / current if current else self.path
            raise OutputError(
                f"Cannot write {where}: {_errno_text(error)}. The previous report in {self.shown} is intact; free "
                f"space or choose another {self.option}."
            ) from None
        finally:
            self.release()
        return [self.path / name for name in files]

    def _swap(self, staging: Path) -> None:
        """Put ``staging`` in place of ``--out``; the old folder ends up in ``staging`` and is removed."""
        self.staging = None  # from here on the path holds either the new run or, after the swap, the old one
        try:
            if not self.path.exists():
                FS.rename(staging, self.path)
                return
            if not FS.exchange(staging, self.path):
                # Two renames; a kill between them is rolled back by the next run (_clean_dead).
                aside = staging.with_name(staging.name[:-1] + ("x" if staging.name[-1] != "x" else "y"))
                if (self.path / MANIFEST).is_file() and not (self.path / PREVIOUS_MARK).exists():
                    FS.write(self.path / PREVIOUS_MARK, b"")
                FS.rename(self.path, aside)
                try:
                    FS.rename(staging, self.path)
                except BaseException:
                    FS.rename(aside, self.path)
                    with contextlib.suppress(OSError):
                        (self.path / PREVIOUS_MARK).unlink()
                    raise
                staging = aside
            FS.sync_folder(self.path.parent)
        finally:
            FS.remove_tree(staging)

    def release(self) -> None:
        """Remove this run's staging folder (if any) and release the lock."""
        if self.staging is not None:
            FS.remove_tree(self.staging)
            self.staging = None
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock.release()
            self._lock = None


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM during the swap: a signal then arrives once the folder is whole again.

    A signal that was held is delivered when this block ends; the run is complete
    by then, so it is noted and the run ends normally.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        except BaseException as late:  # noqa: BLE001 - KeyboardInterrupt or the CLI's SIGTERM exception
            print(f"tsreport: {type(late).__name__} arrived as the report was completed; it stands.", file=sys.stderr)


def report_files(report: Any, formats: tuple[str, ...], templates: str | None) -> dict[str, bytes]:
    """Every file of a run's output, relative path -> bytes: results.json, tables and the chosen formats.

    Each format is one renderer in :data:`tsreport.render.registry.RENDERERS`, written in its order.
    """
    from tsreport.render.registry import render

    return render(report, formats, templates)


def verify(folder: str | Path) -> dict[str, str]:
    """The files of the tsreport run in ``folder`` (relative path -> sha256), checked against its manifest.

    Raises OutputError when a file is missing or differs: the folder is not one whole run.
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
    except (OSError, ValueError) as error:
        raise OutputError(f"{folder} holds no tsreport run manifest ({MANIFEST}): {error}") from None
    files = manifest.get("files", {})
    for name, digest in files.items():
        path = folder / name
        if not path.is_file() or _file_sha256(path) != digest:
            raise OutputError(f"{folder} is not one whole run: {name} is missing or differs from the manifest.")
    return dict(files)
