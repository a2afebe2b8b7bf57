"""Fetch a dataset's public archive: streaming download, resume, checksum, atomic extraction.

``download(url, dest, sha256=None)`` streams ``url`` into ``dest.part`` (resuming a partial file
with an HTTP Range request), verifies the SHA-256 when one is published and only then renames
the file to ``dest``. ``fetch_dataset(name, out)`` downloads every archive of a registered
dataset and extracts them into a temporary sibling folder that is renamed to ``out/name`` once
complete, so a crash never leaves a half-extracted dataset behind and a finished one is not
fetched again.

Extraction is bounded: an archive that would inflate more than ``max_ratio`` times its own size
(a zip bomb) or beyond ``max_bytes``, or more than the disk has free, is refused before (zip) or
while (tar) it is written. An archive that is refused (a bomb, a member escaping its folder, not an
archive at all) or turns out to be corrupt (a bad CRC, a cut-off stream) is deleted, so that
nothing refused stays in ``out`` and the next run downloads it again instead of failing on the same
file forever. An archive without a published checksum gets its SHA-256 printed only once it has
extracted whole: a download cut off without a Content-Length header is not passed off as the file.
"""

import errno
import hashlib
import lzma
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

from coughclf.errors import CoughclfError

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60
# Audio archives inflate 1-5x; text-heavy ones perhaps 20x. 1,000x is a zip bomb.
MAX_EXPANSION_RATIO = 100
MAX_EXTRACTED_BYTES = 200 * 1024 ** 3  # LibriSpeech, the largest corpus here, is about 60 GiB
_USER_AGENT = "coughclf-download"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class RefusedArchiveError(CoughclfError):
    """An archive that is not extracted, and is deleted: a bomb, an unsafe member, not an archive at all."""


class CorruptArchiveError(RefusedArchiveError):
    """An archive whose contents cannot be read back (bad CRC, cut-off compressed stream)."""


def sha256_of(path):
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url, dest, sha256=None, *, progress=True, report_unverified=True):
    """Download ``url`` to ``dest`` and return ``dest``; an existing ``dest`` is not fetched again.

    A ``dest.part`` left by an interrupted run is resumed with ``Range: bytes=N-`` (the server may
    answer with the whole file instead, which then replaces it). With ``sha256`` the finished file
    must match, otherwise the partial file is deleted and a :class:`CoughclfError` says so; without
    it the computed checksum is printed (:func:`report_checksum`) so the user can compare it with a
    trusted source, unless ``report_unverified`` is False (the caller prints it once the file is
    known to be whole).
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _stream(url, part, progress=progress)
    if sha256:
        actual = sha256_of(part)
        if actual != sha256.lower():
            part.unlink()
            raise CoughclfError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; the download "
                                "was deleted: run the command again, and if it persists the archive has changed "
                                "upstream")
        print(f"sha256 verified: {dest.name}", file=sys.stderr)
    elif report_unverified:
        report_checksum(part, dest.name)
    os.replace(part, dest)
    return dest


def report_checksum(path, name=None):
    """Print the SHA-256 of ``path`` (called ``name``), a file without a published checksum, for the user to
    compare with a trusted source."""
    print(f"sha256 of {name or Path(path).name}: {sha256_of(path)} (no published checksum: it could not be "
          "verified)", file=sys.stderr)


def _stream(url, part, *, progress):
    """Append the rest of ``url`` to ``part`` (created or resumed)."""
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:
            return  # the partial file already holds everything; the checksum decides
        raise CoughclfError(f"download of {url} failed: HTTP {error.code} {error.reason}; check the address "
                            "or try again later") from None
    except (urllib.error.URLError, OSError) as error:
        raise CoughclfError(f"cannot reach {url}: {getattr(error, 'reason', error)}; check the network and run "
                            "again (a partial download is resumed)") from None
    with response:
        resumed = bool(have) and response.status == 206
        if not resumed:
            have = 0  # the server sent the whole file
        remaining = response.headers.get("Content-Length")
        total = have + int(remaining) if remaining is not None else None
        received = have
        with open(part, "ab" if resumed else "wb") as handle, \
                tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=part.name.removesuffix(".part"), disable=not progress) as bar:
            try:
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                    handle.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except OSError as error:
                if error.errno in _DISK_FULL:
                    raise CoughclfError(f"the disk is full while writing {part} ({error.strerror}) after {received} "
                                        "bytes; free space on that disk and run the command again: the partial "
                                        "download is kept and resumed") from None
                raise CoughclfError(f"download of {url} interrupted after {received} bytes ({error}); run the "
                                    "command again to resume") from None
    if total is not None and received < total:
        raise CoughclfError(f"download of {url} ended after {received} of {total} bytes; run the command again "
                            "to resume")


def extract(archive, folder, *, max_ratio=MAX_EXPANSION_RATIO, max_bytes=MAX_EXTRACTED_BYTES):
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``folder``, refusing members that escape it and
    archives that inflate beyond ``max_ratio`` times their size, ``max_bytes`` or the free disk space.

    Raises :class:`CorruptArchiveError` when the archive's contents are damaged.
    """
    archive, folder = Path(archive), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    limit = _ExtractionLimit(archive, folder, max_ratio, max_bytes)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                root = folder.resolve()
                for member in bundle.infolist():
                    if not (root / member.filename).resolve().is_relative_to(root):
                        raise RefusedArchiveError(f"{archive} holds a file outside its folder ({member.filename}); "
                                                  "refusing to extract")
                    limit.add(member.file_size, member.filename)  # sizes from the central directory: no work yet
                bundle.extractall(folder)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as bundle:
                def checked(member, path):
                    member = tarfile.data_filter(member, path)
                    limit.add(member.size, member.name)
                    return member

                try:
                    bundle.extractall(folder, filter=checked)
                except tarfile.FilterError as error:
                    raise RefusedArchiveError(f"{archive} holds an unsafe member ({error}); refusing to extract") \
                        from None
        else:
            raise RefusedArchiveError(f"{archive} is neither a zip nor a tar archive")
    except (zipfile.BadZipFile, tarfile.ReadError, EOFError, zlib.error, lzma.LZMAError) as error:
        raise CorruptArchiveError(f"{archive} is corrupt ({error})") from None
    except OSError as error:
        if error.errno in _DISK_FULL:
            raise CoughclfError(f"the disk is full while extracting {archive} into {folder} ({error.strerror}); "
                                "free space on that disk and run the command again") from None
        if error.errno is None:  # gzip's and bz2's damaged-stream errors carry no errno
            raise CorruptArchiveError(f"{archive} is corrupt ({error})") from None
        raise


class _ExtractionLimit:
    """Adds up the bytes an archive inflates to and refuses to go past the limits of :func:`extract`."""

    def __init__(self, archive, folder, max_ratio, max_bytes):
        self.archive, self.total = archive, 0
        archive_bytes = max(archive.stat().st_size, 1)
        self.limits = [(max_ratio * archive_bytes, f"{max_ratio}x the archive's {archive_bytes} bytes "
                                                   "(a decompression bomb?)"),
                       (max_bytes, f"the {max_bytes} bytes allowed"),
                       (shutil.disk_usage(folder).free, f"the {shutil.disk_usage(folder).free} bytes free on the "
                                                        f"disk of {folder}")]

    def add(self, size, name):
        self.total += size
        for limit, description in self.limits:
            if self.total > limit:
                raise RefusedArchiveError(f"{self.archive} inflates to more than {description} (at least "
                                          f"{self.total} bytes, reached at {name}); refusing to extract it")


def _archive_url(archive, base_url):
    if not base_url:
        return archive.url
    return f"{base_url.rstrip('/')}/{_archive_name(archive)}"


def _archive_name(archive):
    return archive.filename or Path(urllib.parse.urlparse(archive.url).path).name


def fetch_dataset(name, out, base_url=None, *, keep_archives=False, progress=True, max_ratio=MAX_EXPANSION_RATIO,
                  max_bytes=MAX_EXTRACTED_BYTES):
    """Download and extract dataset ``name`` into ``out/name``; return that folder.

    ``base_url`` replaces the archives' host and path (``{base_url}/{archive file name}``), for
    mirrors and tests. A finished ``out/name`` is returned at once. Archives are deleted after a
    successful extraction unless ``keep_archives``; ``max_ratio`` and ``max_bytes`` bound the
    extraction (:func:`extract`).
    """
    from coughclf.datasets import get

    spec = get(name)
    if not spec.archives:
        raise CoughclfError(f"dataset '{name}' has no public archive that coughclf can download; get it from "
                            f"{spec.homepage} and pass its folder as --data-dir")
    out = Path(out).expanduser()
    target = out / name
    if target.exists():
        print(f"{target} already exists: nothing to download (delete it to fetch again)", file=sys.stderr)
        return target
    out.mkdir(parents=True, exist_ok=True)
    archives = [download(_archive_url(archive, base_url), out / _archive_name(archive), archive.sha256,
                         progress=progress, report_unverified=False)
                for archive in spec.archives]
    staging = out / f".{name}.extracting"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for archive in archives:
            print(f"extracting {archive.name}", file=sys.stderr)
            try:
                extract(archive, staging, max_ratio=max_ratio, max_bytes=max_bytes)
            except RefusedArchiveError as error:
                archive.unlink(missing_ok=True)
                again = "so running the command again downloads it anew (if it fails again, the archive is " \
                        "damaged at its source)" if isinstance(error, CorruptArchiveError) else \
                        "so nothing refused stays there (run the command again to download it anew)"
                raise CoughclfError(f"{error}; it was deleted from {out}, {again}") from None
        for archive, published in zip(archives, spec.archives):
            if not published.sha256:
                report_checksum(archive)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not keep_archives:
        for archive in archives:
            archive.unlink()
    return target
