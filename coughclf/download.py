"""Fetch a dataset's public archive: streaming download, resume, checksum, atomic extraction.

``download(url, dest, sha256=None)`` streams ``url`` into ``dest.part`` (resuming a partial file
with an HTTP Range request), verifies the SHA-256 when one is published and only then renames
the file to ``dest``. ``fetch_dataset(name, out)`` downloads every archive of a registered
dataset and extracts them into a temporary sibling folder that is renamed to ``out/name`` once
complete, so a crash never leaves a half-extracted dataset behind and a finished one is not
fetched again.
"""

import hashlib
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from coughclf.errors import CoughclfError

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60
_USER_AGENT = "coughclf-download"


def sha256_of(path):
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url, dest, sha256=None, *, progress=True):
    """Download ``url`` to ``dest`` and return ``dest``; an existing ``dest`` is not fetched again.

    A ``dest.part`` left by an interrupted run is resumed with ``Range: bytes=N-`` (the server may
    answer with the whole file instead, which then replaces it). With ``sha256`` the finished file
    must match, otherwise the partial file is deleted and a :class:`CoughclfError` says so; without
    it the computed checksum is printed so the user can compare it with a trusted source.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _stream(url, part, progress=progress)
    actual = sha256_of(part)
    if sha256 and actual != sha256.lower():
        part.unlink()
        raise CoughclfError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; the download "
                            "was deleted: run the command again, and if it persists the archive has changed upstream")
    if sha256:
        print(f"sha256 verified: {dest.name}", file=sys.stderr)
    else:
        print(f"sha256 of {dest.name}: {actual} (no published checksum: it could not be verified)", file=sys.stderr)
    os.replace(part, dest)
    return dest


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
                raise CoughclfError(f"download of {url} interrupted after {received} bytes ({error}); run the "
                                    "command again to resume") from None
    if total is not None and received < total:
        raise CoughclfError(f"download of {url} ended after {received} of {total} bytes; run the command again "
                            "to resume")


def extract(archive, folder):
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``folder``, refusing members that escape it."""
    archive, folder = Path(archive), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            root = folder.resolve()
            for member in bundle.namelist():
                if not (root / member).resolve().is_relative_to(root):
                    raise CoughclfError(f"{archive} holds a file outside its folder ({member}); refusing to extract")
            bundle.extractall(folder)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as bundle:
            try:
                bundle.extractall(folder, filter="data")
            except tarfile.FilterError as error:
                raise CoughclfError(f"{archive} holds an unsafe member ({error}); refusing to extract") from None
    else:
        raise CoughclfError(f"{archive} is neither a zip nor a tar archive; delete it and run again")


def _archive_url(archive, base_url):
    if not base_url:
        return archive.url
    return f"{base_url.rstrip('/')}/{_archive_name(archive)}"


def _archive_name(archive):
    return archive.filename or Path(urllib.parse.urlparse(archive.url).path).name


def fetch_dataset(name, out, base_url=None, *, keep_archives=False, progress=True):
    """Download and extract dataset ``name`` into ``out/name``; return that folder.

    ``base_url`` replaces the archives' host and path (``{base_url}/{archive file name}``), for
    mirrors and tests. A finished ``out/name`` is returned at once. Archives are deleted after a
    successful extraction unless ``keep_archives``.
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
                         progress=progress)
                for archive in spec.archives]
    staging = out / f".{name}.extracting"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for archive in archives:
            print(f"extracting {archive.name}", file=sys.stderr)
            extract(archive, staging)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not keep_archives:
        for archive in archives:
            archive.unlink()
    return target
