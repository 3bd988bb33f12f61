"""Download public data sets into a local cache, verified and extracted atomically.

Layout: `<cache_dir>/<name>/` holds the extracted archive plus a `.sha256` marker with the
checksum of the archive it came from. The directory appears in one `os.replace`, after the
download was verified and fully extracted, so a crash never leaves half a data set behind;
a later call that finds the directory with the right marker downloads nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from edgegnn.errors import DownloadError

logger = logging.getLogger(__name__)

MARKER = ".sha256"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteDataset:
    """A downloadable archive: where it lives and the sha256 it must have."""

    url: str
    sha256: str
    description: str = ""


DATASETS: dict[str, RemoteDataset] = {
    "movielens-100k": RemoteDataset(
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c9a2328",
        description="MovieLens 100K: 100,000 ratings, 943 users, 1,682 movies"),
    "movielens-1m": RemoteDataset(
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        description="MovieLens 1M: 1,000,209 ratings, 6,040 users, 3,706 movies"),
}


def default_cache_dir() -> Path:
    """`$EDGEGNN_CACHE`, else `~/.cache/edgegnn`."""
    env = os.environ.get("EDGEGNN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "edgegnn"


def fetch_dataset(name: str, *, cache_dir: Path | None = None, url: str | None = None,
                  sha256: str | None = None,
                  progress: Callable[[int, int | None], None] | None = None,
                  timeout: float = 60) -> Path:
    """Download, verify and extract data set `name`; return its extracted directory.

    Args:
        name: a key of `DATASETS`.
        cache_dir: where data sets live (default: `default_cache_dir()`).
        url, sha256: override the registry (mirrors, tests).
        progress: called as `progress(bytes_done, bytes_total_or_None)` while downloading.
        timeout: seconds to wait on the network before giving up.

    Raises:
        DownloadError: unknown name, network failure, checksum mismatch, bad archive.
    """
    if name not in DATASETS:
        raise DownloadError(f"unknown data set {name!r}; available: {', '.join(DATASETS)}")
    url = url or DATASETS[name].url
    expected = (sha256 or DATASETS[name].sha256).lower()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = cache / name
    if _is_verified(final, expected):
        logger.info("using cached %s at %s", name, final)
        return final
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create cache directory {cache}: {exc}") from None

    archive = _download(url, cache, expected, progress, timeout)
    try:
        staged = _extract(archive, cache, url)
    finally:
        archive.unlink(missing_ok=True)
    (staged / MARKER).write_text(expected + "\n")
    _install(staged, final, expected)
    logger.info("fetched %s into %s", name, final)
    return final


def _is_verified(directory: Path, expected: str) -> bool:
    try:
        return (directory / MARKER).read_text().strip() == expected
    except OSError:
        return False


def _download(url: str, cache: Path, expected: str,
              progress: Callable[[int, int | None], None] | None, timeout: float) -> Path:
    """Stream `url` into a temp file in `cache` and check its sha256; return the file."""
    logger.info("downloading %s", url)
    fd, tmp_name = tempfile.mkstemp(dir=cache, prefix=".download-", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = resp.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            done = 0
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        got = digest.hexdigest()
        if got != expected:
            raise DownloadError(f"checksum mismatch for {url}: expected sha256 {expected}, "
                                f"got {got}", hint="the file may be corrupt or changed "
                                "upstream; retry, or pass the new sha256 if you trust it")
        return tmp
    except urllib.error.HTTPError as exc:
        tmp.unlink(missing_ok=True)
        raise DownloadError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:  # also timeouts and resets
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"could not download {url}: {reason}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _extract(archive: Path, cache: Path, url: str) -> Path:
    """Extract the zip into a fresh temp directory in `cache`, refusing members that
    would land outside it."""
    staged = Path(tempfile.mkdtemp(dir=cache, prefix=".extract-"))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                _check_member(member, url)
            zf.extractall(staged)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise DownloadError(f"{url} is not a valid zip archive: {exc}") from None
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return staged


def _check_member(member: str, url: str) -> None:
    parts = PurePosixPath(member.replace("\\", "/"))
    if parts.is_absolute() or ".." in parts.parts or ":" in member.split("/")[0]:
        raise DownloadError(f"{url}: refusing unsafe archive member {member!r} "
                            "(absolute path or '..')")


def _install(staged: Path, final: Path, expected: str) -> None:
    """Move `staged` to `final` atomically, replacing a stale copy if there is one."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(dir=final.parent, prefix=".stale-"))
        os.replace(final, old / final.name)
    try:
        os.replace(staged, final)
    except OSError:
        shutil.rmtree(staged, ignore_errors=True)
        if not _is_verified(final, expected):  # lost a race to a broken copy: give up
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
