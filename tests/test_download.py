"""``coughclf download`` against a local HTTP server on 127.0.0.1 serving archives the tests build."""

import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import miniatures
from coughclf import datasets
from coughclf.cli import main
from coughclf.download import download, extract, fetch_dataset
from coughclf.errors import CoughclfError


class ArchiveServer:
    """Serves files from a dict name -> bytes, honouring ``Range: bytes=N-`` unless told not to."""

    def __init__(self):
        self.files = {}
        self.requests = []  # (path, Range header or None, bytes sent)
        self.honour_range = True
        self.cut_off_without_length = None  # bytes to send before closing, with no Content-Length header
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                data = server.files.get(name)
                if data is None:
                    self.send_error(404)
                    server.requests.append((name, self.headers.get("Range"), 0))
                    return
                byte_range = self.headers.get("Range")
                start = 0
                if byte_range and server.honour_range:
                    start = int(byte_range.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                if server.cut_off_without_length is not None:
                    body = body[:server.cut_off_without_length]
                # recorded before the body goes out: the client may check requests as soon as it has read it
                server.requests.append((name, byte_range, len(body)))
                if server.cut_off_without_length is None:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with ArchiveServer() as running:
        yield running


def zip_folder(folder, prefix):
    """A zip (bytes) of every file under ``folder``, stored below ``prefix/`` like a GitHub archive."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                bundle.write(path, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def tar_folder(folder, mode="w:gz"):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as bundle:
        for path in sorted(Path(folder).iterdir()):
            bundle.add(path, path.name)
    return buffer.getvalue()


def test_download_verifies_checksum_and_is_not_repeated(server, tmp_path, capsys):
    payload = bytes(range(256)) * 4000
    server.files["data.bin"] = payload
    dest = download(f"{server.url}/data.bin", tmp_path / "data.bin", hashlib.sha256(payload).hexdigest(),
                    progress=False)
    assert dest.read_bytes() == payload
    assert not (tmp_path / "data.bin.part").exists()
    assert "sha256 verified" in capsys.readouterr().err
    download(f"{server.url}/data.bin", dest, progress=False)
    assert len(server.requests) == 1


def test_fetch_dataset_downloads_and_extracts_a_loadable_folder(server, tmp_path, capsys):
    miniatures.write_fsdd(tmp_path / "source", speakers=("jackson", "theo"), digits=(0, 1), takes=range(3))
    archive = zip_folder(tmp_path / "source", "free-spoken-digit-dataset-master")
    server.files["free-spoken-digit-dataset-master.zip"] = archive
    out = tmp_path / "out"
    folder = fetch_dataset("fsdd", out, base_url=server.url, progress=False)
    assert folder == out / "fsdd"
    err = capsys.readouterr().err
    assert hashlib.sha256(archive).hexdigest() in err and "could not be verified" in err
    clips = datasets.get("fsdd").list_clips(folder)
    assert len(clips) == 2 * 2 * 3
    assert sorted(path.name for path in out.iterdir()) == ["fsdd"]  # no archive, no staging folder left
    fetch_dataset("fsdd", out, base_url=server.url, progress=False)
    assert len(server.requests) == 1


def test_checksum_mismatch_leaves_nothing_extracted(server, tmp_path):
    miniatures.write_yesno(tmp_path / "source", count=4)
    # Not the published yesno archive, so its checksum cannot match.
    server.files["waves_yesno.tar.gz"] = tar_folder(tmp_path / "source")
    out = tmp_path / "out"
    with pytest.raises(CoughclfError, match="checksum mismatch.*waves_yesno.tar.gz"):
        fetch_dataset("yesno", out, base_url=server.url, progress=False)
    assert list(out.iterdir()) == []


def test_partial_file_is_resumed_with_a_range_request(server, tmp_path):
    payload = bytes(reversed(range(256))) * 3000
    server.files["big.bin"] = payload
    already = 200_000
    (tmp_path / "big.bin.part").write_bytes(payload[:already])
    dest = download(f"{server.url}/big.bin", tmp_path / "big.bin", hashlib.sha256(payload).hexdigest(),
                    progress=False)
    assert dest.read_bytes() == payload
    assert server.requests == [("big.bin", f"bytes={already}-", len(payload) - already)]


def test_server_that_ignores_range_gets_a_fresh_file(server, tmp_path):
    payload = b"0123456789" * 5000
    server.files["big.bin"] = payload
    server.honour_range = False
    (tmp_path / "big.bin.part").write_bytes(b"stale bytes from another file")
    dest = download(f"{server.url}/big.bin", tmp_path / "big.bin", hashlib.sha256(payload).hexdigest(),
                    progress=False)
    assert dest.read_bytes() == payload


def test_http_error_and_datasets_without_archive_are_clear_errors(server, tmp_path):
    with pytest.raises(CoughclfError, match="HTTP 404"):
        download(f"{server.url}/absent.zip", tmp_path / "absent.zip", progress=False)
    assert not (tmp_path / "absent.zip").exists()
    with pytest.raises(CoughclfError, match="unknown dataset 'nosuch'"):
        fetch_dataset("nosuch", tmp_path)
    with pytest.raises(CoughclfError, match="no public archive"):
        fetch_dataset("urbansound8k", tmp_path)


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2"])
def test_extract_reads_tar_variants(tmp_path, mode):
    miniatures.write_yesno(tmp_path / "source", count=2)
    archive = tmp_path / "archive"
    archive.write_bytes(tar_folder(tmp_path / "source", mode))
    extract(archive, tmp_path / "out")
    assert len(list((tmp_path / "out" / "waves_yesno").glob("*.wav"))) == 2


def test_extract_refuses_members_outside_the_folder(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../escaped.txt", "outside")
    with pytest.raises(CoughclfError, match="outside"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    not_an_archive = tmp_path / "plain.zip"
    not_an_archive.write_text("hello")
    with pytest.raises(CoughclfError, match="neither a zip nor a tar"):
        extract(not_an_archive, tmp_path / "out2")


def test_download_command(server, tmp_path, capsys):
    miniatures.write_fsdd(tmp_path / "source", speakers=("theo",), digits=(3,), takes=(0,))
    server.files["free-spoken-digit-dataset-master.zip"] = zip_folder(tmp_path / "source", "fsdd-master")
    out = tmp_path / "out"
    assert main(["download", "fsdd", "--out", str(out), "--base-url", server.url, "--keep-archive"]) == 0
    assert f"--data-dir {out / 'fsdd'}" in capsys.readouterr().out
    assert (out / "free-spoken-digit-dataset-master.zip").exists()
    assert main(["download", "nosuch", "--out", str(out)]) == 2
    assert "unknown dataset" in capsys.readouterr().err


def bomb_zip(megabytes=20):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as bundle:
        bundle.writestr("bomb/zeros.wav", bytes(megabytes << 20))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_an_archive_that_inflates_a_thousandfold_is_refused(tmp_path, kind):
    archive = tmp_path / f"bomb.{kind}"
    if kind == "zip":
        archive.write_bytes(bomb_zip())
    else:
        with tarfile.open(archive, "w:gz") as bundle:
            member = tarfile.TarInfo("bomb/zeros.wav")
            member.size = 20 << 20
            bundle.addfile(member, io.BytesIO(bytes(member.size)))
    assert archive.stat().st_size < (20 << 20) / 500
    with pytest.raises(CoughclfError, match=r"bomb.*inflates to more than 100x the archive's"):
        extract(archive, tmp_path / "out")
    assert sum(path.stat().st_size for path in (tmp_path / "out").rglob("*") if path.is_file()) < (2 << 20)
    # The total size has its own limit, and so has the free disk space.
    small = tmp_path / "small.zip"
    small.write_bytes(zip_folder(miniatures.write_yesno(tmp_path / "yesno", count=3), "yesno"))
    with pytest.raises(CoughclfError, match="more than the 1000 bytes allowed"):
        extract(small, tmp_path / "out2", max_bytes=1000)


def test_extraction_beyond_the_free_disk_space_is_refused_before_writing(tmp_path, monkeypatch):
    import shutil

    small = tmp_path / "small.zip"
    small.write_bytes(zip_folder(miniatures.write_yesno(tmp_path / "yesno", count=3), "yesno"))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: type("Usage", (), {"free": 100})())
    with pytest.raises(CoughclfError, match=r"more than the 100 bytes free on the disk"):
        extract(small, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_corrupt_zip_is_deleted_so_the_next_run_downloads_it_again(server, tmp_path):
    miniatures.write_fsdd(tmp_path / "source", speakers=("jackson",), digits=(0, 1), takes=range(2))
    good = zip_folder(tmp_path / "source", "free-spoken-digit-dataset-master")
    damaged = bytearray(good)
    damaged[200] ^= 0xFF  # inside the first member's stored data: its CRC no longer matches
    server.files["free-spoken-digit-dataset-master.zip"] = bytes(damaged)
    out = tmp_path / "out"
    with pytest.raises(CoughclfError, match=r"free-spoken-digit-dataset-master.zip is corrupt.*(CRC|crc).*deleted"):
        fetch_dataset("fsdd", out, base_url=server.url, progress=False)
    assert list(out.iterdir()) == []
    server.files["free-spoken-digit-dataset-master.zip"] = good
    folder = fetch_dataset("fsdd", out, base_url=server.url, progress=False)
    assert len(datasets.get("fsdd").list_clips(folder)) == 4 and len(server.requests) == 2


def test_a_full_disk_while_downloading_keeps_the_partial_file_and_says_so(server, tmp_path, monkeypatch):
    import errno

    import coughclf.download as download_module

    server.files["data.bin"] = bytes(3 << 20)

    class FullDisk(io.BytesIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(download_module, "open", lambda *args, **kwargs: FullDisk(), raising=False)
    with pytest.raises(CoughclfError, match=r"disk is full while writing .*data.bin.part.*free space"):
        download(f"{server.url}/data.bin", tmp_path / "data.bin", progress=False)


def test_download_command_refuses_a_bomb_unless_the_limit_is_raised(server, tmp_path, capsys):
    server.files["free-spoken-digit-dataset-master.zip"] = bomb_zip(megabytes=4)
    out = tmp_path / "out"
    assert main(["download", "fsdd", "--out", str(out), "--base-url", server.url]) == 2
    error = capsys.readouterr().err
    assert "inflates to more than 100x" in error and f"it was deleted from {out}, so nothing refused stays" in error
    assert list(out.iterdir()) == []  # neither the dataset nor the refused archive
    assert main(["download", "fsdd", "--out", str(out), "--base-url", server.url, "--max-ratio", "2000"]) == 0
    assert (out / "fsdd" / "bomb" / "zeros.wav").stat().st_size == 4 << 20


def test_a_download_cut_off_without_a_length_gets_no_checksum_before_extraction_fails(server, tmp_path, capsys):
    """Issue 25: without Content-Length a cut-off download looks complete; its sha256 was printed as the file's."""
    miniatures.write_fsdd(tmp_path / "source", speakers=("jackson",), digits=(0, 1), takes=range(2))
    whole = zip_folder(tmp_path / "source", "free-spoken-digit-dataset-master")
    server.files["free-spoken-digit-dataset-master.zip"] = whole
    server.cut_off_without_length = len(whole) // 2
    out = tmp_path / "out"
    with pytest.raises(CoughclfError, match=r"is neither a zip nor a tar archive; it was deleted from"):
        fetch_dataset("fsdd", out, base_url=server.url, progress=False)
    assert "sha256" not in capsys.readouterr().err and list(out.iterdir()) == []
    server.cut_off_without_length = None
    fetch_dataset("fsdd", out, base_url=server.url, progress=False)
    assert f"sha256 of free-spoken-digit-dataset-master.zip: {hashlib.sha256(whole).hexdigest()}" \
        in capsys.readouterr().err
