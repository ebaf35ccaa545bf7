"""TF Serving model directories (`<model_dir>/<version>/`), written so that no export loses a model.

An export (`mmzoo.export_model`) goes through these steps; docs/reliability.md says what kill -9 leaves at each:

1. `Staging.__enter__`: create `model_dir`; under the directory lock, restore an orphaned retired version (an
   overwrite killed between its two renames) and remove stale staging left by killed exports; then create this
   export's container `.<version or "new">.tmp-<token>/`, `flock`-ed for as long as the export runs.
2. The caller writes the SavedModel to `staging.path` (`<container>/model`).
3. `Staging.publish`: under the directory lock, rename the finished SavedModel to the next free version number
   (a rename onto a taken number fails and the next one is tried), or to the version asked for; with
   `overwrite=True` the old version is first renamed `.<N>.old-<token>`, and removed once the new one is in place.
4. `Staging.__exit__`: remove the container and release its lock.

A version directory only ever appears complete, so TF Serving and `load_exported` never see a half-written one.
The locks are `fcntl.flock` locks on the directories themselves (no lock files): the kernel releases them when
their process dies, so a container whose lock can be taken belongs to a killed export. Where `flock` does not
exist (Windows) a container is taken for stale once it is an hour old, and publication relies on renames
failing onto taken names alone.
"""

import contextlib
import errno
import os
import re
import shutil
import time
import uuid

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

VERSION = re.compile(r"^[0-9]+$")
_STAGING = re.compile(r"^\.(?:[0-9]+|new)\.tmp-[0-9a-f]{32}$")
_RETIRED = re.compile(r"^\.([0-9]+)\.old-[0-9a-f]{32}$")
STALE_AFTER_S = 3600  # only where flock is missing: a container older than this is taken for abandoned
_TAKEN = (errno.EEXIST, errno.ENOTEMPTY)


class ExportDirectoryError(OSError):
    """A model directory that cannot be written as an export needs; the message names the path."""

    def __init__(self, message, code=None):
        super().__init__(message)  # one argument: str() is the message alone, no "[Errno N]"
        self.errno = code


def split_target(path):
    """`(model_dir, version or None)` of an export target: a version directory (`saved_models/vqa/3`) or a
    model directory (`saved_models/vqa`, the next free version)."""
    path = os.fspath(path)
    path = path.rstrip("/\\") or path
    base = os.path.basename(path)
    if VERSION.match(base):
        if int(base) < 1:
            raise ValueError(f"A SavedModel version must be a positive integer. Received: path={path!r}")
        return os.path.dirname(path) or ".", int(base)
    return path, None


def is_complete(version_dir):
    """Whether `version_dir` holds a whole SavedModel (saved_model.pb and variables/)."""
    return (os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
            and os.path.isdir(os.path.join(version_dir, "variables")))


def numbered_versions(model_dir):
    """The version numbers of `model_dir`'s numbered entries, highest first."""
    return sorted((int(entry) for entry in os.listdir(model_dir) if VERSION.match(entry)), reverse=True)


def choose_version(path):
    """The version directory `load_exported(path)` reads: `path` itself when it holds a saved_model.pb, else the
    highest complete version of the model directory `path` (empty or partial versions are skipped)."""
    path = os.fspath(path)
    parent, base = os.path.split(path.rstrip("/\\") or path)
    if VERSION.match(base) and not os.path.isdir(path) and os.path.isdir(parent or "."):
        _recover_quietly(parent or ".")  # the version may be an orphaned retired copy
    if not os.path.isdir(path):
        raise ValueError(f"No exported model at {path!r}: not a directory.")
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        if not os.path.isdir(os.path.join(path, "variables")):
            raise ValueError(f"Incomplete SavedModel at {path!r}: saved_model.pb without a variables/ directory.")
        return path
    _recover_quietly(path)
    versions = numbered_versions(path)
    for number in versions:
        if is_complete(os.path.join(path, str(number))):
            return os.path.join(path, str(number))
    if not versions:
        raise ValueError(f"No SavedModel at {path!r}: no saved_model.pb and no numbered version directories.")
    shown = ", ".join(map(str, versions))
    raise ValueError(f"No complete SavedModel version in {path!r}: versions {shown} each lack saved_model.pb "
                     "or variables/.")


class Staging:
    """One export's staging area in `model_dir`; a context manager (see the module's docstring)."""

    def __init__(self, model_dir, version=None, *, overwrite=False):
        self.model_dir, self.version, self.overwrite = model_dir, version, overwrite
        self.token = uuid.uuid4().hex
        self.container = os.path.join(model_dir, f".{version or 'new'}.tmp-{self.token}")
        self.path = os.path.join(self.container, "model")
        self._fd = None

    def __enter__(self):
        _make_directory(self.model_dir)
        with _directory_lock(self.model_dir):
            try:
                tidy(self.model_dir)
            except OSError as error:
                raise _unwritable(self.model_dir, error) from None
            if self.version is not None and not self.overwrite:
                _refuse_existing(os.path.join(self.model_dir, str(self.version)))
            try:
                os.mkdir(self.container)
                self._fd = _lock(self.container, blocking=True)
            except OSError as error:
                raise _unwritable(self.model_dir, error) from None
        return self

    def __exit__(self, *exc_info):
        shutil.rmtree(self.container, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)  # releases the container's lock
            self._fd = None
        return False

    def publish(self):
        """Move the finished SavedModel at `self.path` into place; returns its version directory."""
        with _directory_lock(self.model_dir):
            if self.version is None:
                return _rename_to_next_version(self.path, self.model_dir)
            target = os.path.join(self.model_dir, str(self.version))
            if self.overwrite:
                _swap_into_place(self.path, target, self.token)
            else:
                _refuse_existing(target)
                _rename_or_refuse(self.path, target)
            return target


def tidy(model_dir):
    """Restore orphaned retired versions and remove stale staging in `model_dir`; call under its lock."""
    entries = os.listdir(model_dir)
    _restore_orphans(model_dir, entries)
    for entry in entries:
        path = os.path.join(model_dir, entry)
        retired = _RETIRED.match(entry)
        if retired and os.path.lexists(path) and is_complete(os.path.join(model_dir, retired.group(1))):
            shutil.rmtree(path, ignore_errors=True)  # a swap killed after the new version was in place
        elif _STAGING.match(entry) and not _in_use(path):
            shutil.rmtree(path, ignore_errors=True)


def _restore_orphans(model_dir, entries):
    """Rename `.N.old-*` back to N where N is missing: an overwrite was killed between its two renames, and the
    old version is the one to keep (the most recently modified copy, should there be several)."""
    for entry in sorted(entries, key=lambda name: _mtime(os.path.join(model_dir, name)), reverse=True):
        retired = _RETIRED.match(entry)
        if retired and not os.path.lexists(os.path.join(model_dir, retired.group(1))):
            os.rename(os.path.join(model_dir, entry), os.path.join(model_dir, retired.group(1)))


def _recover_quietly(model_dir):
    """Restore orphaned retired versions before a load; a read-only directory is left as it is."""
    try:
        with _directory_lock(model_dir):
            _restore_orphans(model_dir, os.listdir(model_dir))
    except OSError:
        pass


def _next_version(model_dir):
    """One above every number in use, retired copies included (their version may yet be restored)."""
    numbers = [int(entry) for entry in os.listdir(model_dir) if VERSION.match(entry)]
    numbers += [int(match.group(1)) for match in map(_RETIRED.match, os.listdir(model_dir)) if match]
    return max(numbers, default=0) + 1


def _rename_to_next_version(source, model_dir):
    number = _next_version(model_dir)
    for _ in range(1000):
        target = os.path.join(model_dir, str(number))
        if not os.path.lexists(target):  # POSIX would rename over an empty directory another tool made
            try:
                os.rename(source, target)
                return target
            except OSError as error:
                if not isinstance(error, FileExistsError) and error.errno not in _TAKEN:
                    raise
        number += 1
    raise ExportDirectoryError(f"No free version number in {model_dir} after {number - 1}; remove old versions.")


def _swap_into_place(staging, target, token):
    """Replace `target` by `staging`, keeping the old version as `.N.old-<token>` until the new one is in place
    (`tidy` restores it if this process dies in between)."""
    if not os.path.lexists(target):
        os.rename(staging, target)
        return
    retired = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.old-{token}")
    os.rename(target, retired)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(retired, target)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _refuse_existing(target):
    if os.path.lexists(target):
        raise FileExistsError(f"Export target {target} already exists; pass overwrite=True to replace it.")


def _rename_or_refuse(source, target):
    try:
        os.rename(source, target)
    except OSError as error:
        if isinstance(error, FileExistsError) or error.errno in _TAKEN:
            raise FileExistsError(f"Export target {target} was written by another export meanwhile; pass "
                                  "overwrite=True to replace it.") from None
        raise


def _make_directory(model_dir):
    try:
        os.makedirs(model_dir, exist_ok=True)
    except OSError as error:
        raise _unwritable(model_dir, error) from None
    if not os.path.isdir(model_dir):
        raise ExportDirectoryError(f"Cannot export to {model_dir}: not a directory", errno.ENOTDIR)


def _unwritable(model_dir, error):
    where = f" ({error.filename})" if error.filename and os.fspath(error.filename) != os.fspath(model_dir) else ""
    reason = error.strerror or str(error)
    return ExportDirectoryError(f"Cannot export to {model_dir}: {reason}{where}; expected a writable directory",
                                error.errno)


@contextlib.contextmanager
def _directory_lock(directory):
    """An exclusive flock on `directory` itself, serializing the short steps that rename entries in it."""
    fd = _lock(directory, blocking=True)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _lock(directory, *, blocking):
    """An open descriptor of `directory` holding an exclusive flock on it; None where flock is missing or
    unsupported by the filesystem. Raises BlockingIOError when `blocking` is False and another holds it."""
    if fcntl is None:
        return None
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        raise
    except OSError:  # e.g. ENOLCK on a network filesystem without locks
        os.close(fd)
        return None
    return fd


def _in_use(container):
    """Whether a staging container belongs to a live export: its lock is held (or, without flock, it is
    younger than STALE_AFTER_S)."""
    try:
        fd = _lock(container, blocking=False)
    except BlockingIOError:
        return True
    except OSError:  # gone meanwhile
        return False
    if fd is None:
        return time.time() - _mtime(container) < STALE_AFTER_S
    os.close(fd)
    return False


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
