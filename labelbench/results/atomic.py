"""One way to write a file so that readers never see half of it, and one way to say why a
write failed (a full disk, a file size limit ...)."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

# Why a write failed, as a user can act on it; other errors are told by their strerror.
REASONS = {
    errno.ENOSPC: "no space left on the device (ENOSPC)",
    errno.EFBIG: "larger than the file size limit (EFBIG; see `ulimit -f`)",
    errno.EDQUOT: "disk quota exceeded (EDQUOT)",
    errno.EROFS: "read-only file system (EROFS)",
}
FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # out of room, rather than not allowed


def reason(error: OSError) -> str:
    """Why `error` stopped a write, in words: 'no space left on the device (ENOSPC)'."""
    if error.errno in REASONS:
        return REASONS[error.errno]
    words = (error.strerror or str(error) or type(error).__name__).rstrip(".")
    name = errno.errorcode.get(error.errno or -1)
    return f"{words[:1].lower()}{words[1:]}" + (f" ({name})" if name else "")


class WriteError(OSError):
    """A file that could not be written. Its message names what, where and why, in one line:
    'could not write the run record results/runs/ab12.json: no space left on the device
    (ENOSPC)'. An OSError with the cause's errno, so callers that catch OSError still do."""

    def __init__(
        self,
        what: str,
        path: str | os.PathLike,
        code: int | None,
        why: str,
        strerror: str | None = None,
    ) -> None:
        super().__init__(code, strerror or why, str(path))  # strerror: the system's words
        self.what, self.why = what, why

    @classmethod
    def of(cls, what: str, path: str | os.PathLike, error: OSError) -> WriteError:
        """The WriteError for `error` raised while writing `what` to `path` (itself if it is
        one already)."""
        if isinstance(error, WriteError):
            return error
        return cls(what, path, error.errno, reason(error), error.strerror)

    @property
    def disk_full(self) -> bool:
        """Out of room (a full disk, a quota, a file size limit), not refused."""
        return self.errno in FULL

    def __str__(self) -> str:
        return f"could not write {self.what} {self.filename}: {self.why}"

    def __reduce__(self):  # pickled as it was built (joblib and submitit pickle errors)
        return (type(self), (self.what, self.filename, self.errno, self.why, self.strerror))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(
    path: str | os.PathLike,
    data: str | bytes | bytearray | memoryview,
    *,
    fsync: bool = False,
    what: str = "the file",
) -> Path:
    """Write `data` to `path` through a temp file in the same folder and a rename: a crash at
    any point leaves the old file or the new one, never a partial one, and no temp file.
    The file gets the umask's permissions (not mkstemp's 0600). `fsync`: flush to disk
    before the rename, so the new file also survives a power cut (run records).

    A write that fails (a full disk, a file size limit, a read-only folder ...) leaves the
    old file as it was, removes the temp file and raises WriteError naming `what` ('the run
    record'), `path` and why."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise WriteError.of(what, path, e) from e
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:  # closing flushes: a full disk may only show here
            f.write(data.encode() if isinstance(data, str) else data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise WriteError.of(what, path, e) from e
        raise
    return path
