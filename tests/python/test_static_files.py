"""Static files through curl, an independent HTTP client: a large download,
byte ranges and a resumed download, conditional requests and HEAD, each
checked byte for byte against the file."""
import hashlib
import os
import subprocess
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest

import chatws
from conftest import WAIT

SIZE = 12 << 20  # many chunks and windows of the server's reads


def run_curl(*args: str) -> Tuple[int, bytes, bytes]:
    """Runs curl; returns (exit code, stdout, stderr)."""
    p = subprocess.run(["curl", "--silent", "--show-error", "--max-time", str(3 * WAIT), *args],
                       capture_output=True, timeout=4 * WAIT, check=False)
    return p.returncode, p.stdout, p.stderr


def headers_of(raw: bytes) -> Dict[str, str]:
    """The header fields of the last response head in curl's --dump-header output."""
    heads = [h for h in raw.split(b"\r\n\r\n") if h.startswith(b"HTTP/")]
    lines = heads[-1].decode().split("\r\n")
    fields = {"status": lines[0].split(" ")[1]}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return fields


@pytest.fixture
def served(make_server: Callable[..., chatws.Server], tmp_path: Path) -> Tuple[str, bytes, Path]:
    data = os.urandom(SIZE)
    root = tmp_path / "www"
    root.mkdir()
    (root / "big.bin").write_bytes(data)
    server = make_server(static_dir=root).start()
    return server.http_url + "big.bin", data, tmp_path


def test_large_download_is_byte_exact(served: Tuple[str, bytes, Path]) -> None:
    url, data, tmp = served
    out = tmp / "got.bin"
    rc, _, err = run_curl("--output", str(out), "--dump-header", str(tmp / "h.txt"), url)
    assert rc == 0, err
    h = headers_of((tmp / "h.txt").read_bytes())
    assert h["status"] == "200"
    assert h["content-length"] == str(SIZE)
    assert h["accept-ranges"] == "bytes"
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize("spec,first,last", [
    ("0-0", 0, 0),
    ("16383-16385", 16383, 16385),
    ("1000000-3000000", 1000000, 3000000),
    ("-5000", SIZE - 5000, SIZE - 1),
    (f"{SIZE - 10}-", SIZE - 10, SIZE - 1),
])
def test_ranges_are_byte_exact(served: Tuple[str, bytes, Path], spec: str, first: int, last: int) -> None:
    url, data, tmp = served
    rc, body, err = run_curl("--range", spec, "--dump-header", str(tmp / "h.txt"), url)
    assert rc == 0, err
    h = headers_of((tmp / "h.txt").read_bytes())
    assert h["status"] == "206"
    assert h["content-range"] == f"bytes {first}-{last}/{SIZE}"
    assert body == data[first:last + 1]


def test_unsatisfiable_range_is_416(served: Tuple[str, bytes, Path]) -> None:
    url, _, tmp = served
    rc, _, err = run_curl("--range", f"{SIZE}-", "--dump-header", str(tmp / "h.txt"), url)
    assert rc == 0, err
    h = headers_of((tmp / "h.txt").read_bytes())
    assert h["status"] == "416"
    assert h["content-range"] == f"bytes */{SIZE}"


def test_interrupted_download_resumes_byte_exact(served: Tuple[str, bytes, Path]) -> None:
    url, data, tmp = served
    out = tmp / "part.bin"
    out.write_bytes(data[:3333333])  # what an interrupted download left
    rc, _, err = run_curl("--continue-at", "-", "--output", str(out), url)
    assert rc == 0, err
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_conditional_requests(served: Tuple[str, bytes, Path]) -> None:
    url, data, tmp = served
    rc, head, err = run_curl("--head", url)
    assert rc == 0, err
    h = headers_of(head)
    assert h["status"] == "200"
    assert h["content-length"] == str(SIZE)
    etag, modified = h["etag"], h["last-modified"]
    assert etag.startswith('"') and etag.endswith('"')

    def status(*extra: str) -> Tuple[str, bytes]:
        rc, body, err = run_curl("--dump-header", str(tmp / "h.txt"), *extra, url)
        assert rc == 0, err
        return headers_of((tmp / "h.txt").read_bytes())["status"], body

    assert status("--header", f"If-None-Match: {etag}") == ("304", b"")
    assert status("--header", f"If-Modified-Since: {modified}") == ("304", b"")
    assert status("--header", 'If-None-Match: "other"')[0] == "200"
    assert status("--header", 'If-Match: "other"')[0] == "412"
    # If-Range: the range for the same version, else the whole file.
    assert status("--range", "10-19", "--header", f"If-Range: {etag}") == ("206", data[10:20])
    code, body = status("--range", "10-19", "--header", 'If-Range: "stale"')
    assert code == "200" and len(body) == SIZE


def test_several_downloads_at_once_are_byte_exact(served: Tuple[str, bytes, Path]) -> None:
    url, data, tmp = served
    procs: List["subprocess.Popen[bytes]"] = []
    for i in range(4):
        procs.append(subprocess.Popen(["curl", "--silent", "--max-time", str(3 * WAIT),
                                       "--output", str(tmp / f"c{i}.bin"), url]))
    for p in procs:
        assert p.wait(timeout=4 * WAIT) == 0
    digest = hashlib.sha256(data).digest()
    for i in range(4):
        assert hashlib.sha256((tmp / f"c{i}.bin").read_bytes()).digest() == digest
