"""Every code block of README.md and python/README.md, run as pasted.

See doc_blocks.py for the annotation each block carries. The only change
made to a block is its fixed port, replaced by a free one. Blocks that
install do it into throwaway places: a scratch copy of the repository, a
fresh venv, a private prefix, or, for the system prefix, /usr/local and
/etc overlaid in a private mount namespace (unshare -m) that disappears with
the test, so that the machine is never changed.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
import websocket  # websocket-client

from doc_blocks import README_PORTS, Block, free_port, parse, with_free_ports

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("CHATWS_BUILD_DIR", REPO / "build")).resolve()
WAIT = 20.0
BUILD_WAIT = 900.0  # a scratch build of the library or the extension

DOCS = {"README.md": REPO / "README.md", "python/README.md": REPO / "python" / "README.md"}
BLOCKS: List[Block] = [b for name, path in DOCS.items() for b in parse(path, name)]


def scenario(name: str) -> List[Block]:
    found = [b for b in BLOCKS if b.scenario == name]
    assert found, f"no block of scenario {name!r} in {list(DOCS)}"
    return found


def test_every_block_is_annotated_and_handled() -> None:
    handled = {"entry", "terminal", "c-system", "c-private", "c-fragment", "consumer", "layout",
               "ci-build", "python-pip", "python", "python-cli", "python-tls", "python-dev",
               "c-toplevel", "prometheus-config", "python-fragment", "cluster"}
    bare = [b.where for b in BLOCKS if not b.scenario]
    assert not bare, f"code blocks without a <!-- doc-test: ... --> line: {bare}"
    unknown = [(b.where, b.scenario) for b in BLOCKS if b.scenario not in handled]
    assert not unknown, f"annotations no test handles: {unknown}"


# --------------------------------------------------------------- helpers

class Proc:
    """A shell or Python program in its own process group, output awaited with a deadline."""

    def __init__(self, argv: List[str], cwd: Path, env: Dict[str, str]) -> None:
        self.p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: List[str] = []

    def wait_line(self, pattern: str, timeout: float) -> re.Match:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        assert self.p.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.p.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n"
                                         + "".join(self.lines[-40:]))
                line = self.p.stdout.readline()
                if not line:
                    raise AssertionError(f"ended (status {self.p.wait()}) before {pattern!r}:\n"
                                         + "".join(self.lines[-40:]))
                self.lines.append(line)
                m = regex.search(line)
                if m:
                    return m

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.p.stdout is None or self.p.stdout.closed:  # stopped already
            return self.p.returncode
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
                self.p.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
        rest, _ = self.p.communicate()
        self.lines.append(rest or "")
        return self.p.returncode


@pytest.fixture
def procs() -> Iterator[List[Proc]]:
    started: List[Proc] = []
    yield started
    for p in started:
        p.stop(signal.SIGKILL)


def run(argv: List[str], cwd: Path, env: Dict[str, str], timeout: float = BUILD_WAIT) -> str:
    r = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    assert r.returncode == 0, f"{argv} exited {r.returncode}:\n{r.stdout[-6000:]}"
    return r.stdout


def wait_port(port: int, proc: Proc, timeout: float = WAIT) -> None:
    """Until 127.0.0.1:port accepts (bounded; the process must stay up)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.p.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"port {port} never accepted; output: {proc.p.stdout and ''}")
            time.sleep(delay)  # a bounded back-off while a child starts: no event to wait for
            delay = min(delay * 2, 0.2)


def probe_echo(port: int) -> None:
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=WAIT)
    ws.send("doc-test")
    assert ws.recv() == "doc-test"
    ws.close()


def probe_chat(port: int, path: str = "/", plain_told: bool = True) -> None:
    url = f"ws://127.0.0.1:{port}{path}"
    ws = websocket.create_connection(url, timeout=WAIT, subprotocols=["chatws.v1"])
    assert json.loads(ws.recv())["type"] == "hello"
    ws.send(json.dumps({"user": "doc", "text": "doc-test"}))
    while True:
        event = json.loads(ws.recv())
        if event["type"] == "msg":
            assert event["text"] == "doc-test"
            break
    ws.close()
    if not plain_told:
        return
    # A client without a subprotocol is told what to offer.
    plain = websocket.create_connection(url, timeout=WAIT)
    opcode, frame = plain.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame[:2], "big") == 1008
    assert "chatws.v1" in frame[2:].decode() and "json" in frame[2:].decode()
    plain.close()


PROBES = {"echo": probe_echo, "chat": probe_chat,
          # A host's own chat server (chatws.Server(chat=True)): plain clients are its business.
          "chat-only": lambda port: probe_chat(port, plain_told=False)}


def serve(block: Block, argv: List[str], cwd: Path, env: Dict[str, str], port: int,
          procs: List[Proc], timeout: float = WAIT) -> Proc:
    """Start a `serve` block, wait until it is up, probe it; the caller stops it."""
    p = Proc(argv, cwd, env)
    procs.append(p)
    if "line" in block.params:
        p.wait_line(with_free_ports(block.params["line"], {k: str(port) for k in README_PORTS}),
                    timeout)
    wait_port(port, p, timeout)
    PROBES[block.params.get("probe", "echo")](port)
    return p


def ports_of(code: str) -> Dict[str, str]:
    """A free port for each README port the block uses."""
    return {old: str(free_port()) for old in README_PORTS if old in code}


def one_port(code: str) -> int:
    ports = ports_of(code)
    assert len(ports) == 1, f"expected one fixed port in:\n{code}"
    return int(next(iter(ports.values())))


def base_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "VIRTUAL_ENV"))}
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", os.environ.get("CHATWS_JOBS", "2"))
    env.update(extra)
    return env


def source_copy(dest: Path) -> Path:
    """The repository's files (tracked and new, not ignored ones: no build trees)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           check=True, stdout=subprocess.PIPE).stdout.decode().split("\0")
    for f in filter(None, files):
        src = REPO / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    return dest


# ------------------------------------------------------------ the blocks

def test_fresh_machine_commands(procs: List[Proc], tmp_path: Path) -> None:
    (block,) = scenario("entry")
    commands = [line.split("#")[0].strip() for line in block.code.splitlines() if line.strip()]
    assert commands == ["./scripts/run.sh", "./scripts/test.sh"], "the README starts with two commands"
    # The second is what CI runs (this test runs inside it).
    assert "./scripts/test.sh" in (REPO / ".ci" / "run").read_text()
    # The first, as pasted, on a free port (a later --port wins) and this build tree.
    port = free_port()
    env = base_env(CHATWS_BUILD_DIR=str(BUILD_DIR), CHATWS_HISTORY=str(tmp_path / "h.db"),
                   CHATWS_SKIP_BOOTSTRAP="1")
    p = Proc(["bash", "-c", f"{commands[0]} --port {port}"], REPO, env)
    procs.append(p)
    p.wait_line(rf"chat on http://127\.0\.0\.1:{port}/", BUILD_WAIT)
    probe_chat(port)
    assert p.stop(signal.SIGTERM) == 0


def test_chat_from_a_terminal(procs: List[Proc], tmp_path: Path) -> None:
    (block,) = scenario("terminal")
    (tmp_path / "chat.py").write_text(block.code)
    port = free_port()
    server = Proc([sys.executable, "-m", "chatws", "--port", str(port), "--no-static"], tmp_path,
                  base_env())
    procs.append(server)
    server.wait_line("chat server running", WAIT)
    client = Proc([sys.executable, "chat.py", f"ws://127.0.0.1:{port}/rooms/doc"], tmp_path,
                  base_env())
    procs.append(client)
    client.wait_line(r"^terminal: hello from a terminal$", WAIT)
    # A second terminal sees the first one's message in its history.
    second = Proc([sys.executable, "chat.py", f"ws://127.0.0.1:{port}/rooms/doc"], tmp_path,
                  base_env())
    procs.append(second)
    second.wait_line(r"^terminal: hello from a terminal$", WAIT)
    client.wait_line(r"^terminal: hello from a terminal$", WAIT)  # the second's, live


def namespace_prefix() -> Optional[List[str]]:
    """How to run a command with /usr/local and /etc overlaid on scratch
    directories (private mount namespace), or None if this machine cannot."""
    if shutil.which("unshare") is None:
        return None
    for argv in (["unshare", "-m"], ["unshare", "-r", "-m"]):
        if subprocess.run(argv + ["true"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0:
            return argv
    return None


def overlay_script(scratch: Path) -> str:
    """Shell lines that overlay /usr/local and /etc (run inside the namespace)."""
    lines = ["set -e", "mount --make-rprivate /"]
    for d in ("/usr/local", "/etc"):
        up = scratch / ("overlay" + d.replace("/", "-"))
        (up / "upper").mkdir(parents=True)
        (up / "work").mkdir()
        lines.append(f"mount -t overlay overlay -o lowerdir={d},upperdir={up}/upper,workdir={up}/work {d}")
    return "\n".join(lines) + "\n"


def test_c_quick_start_system_and_private_prefix(procs: List[Proc], tmp_path: Path) -> None:
    """The C quick start as pasted: build, install into /usr/local (in a
    throwaway mount namespace) + ldconfig, compile and run echo.c; then the
    same program against a private prefix; then the consumer snippets."""
    system, private, consumer = scenario("c-system"), scenario("c-private"), scenario("consumer")
    src = source_copy(tmp_path / "chatws")
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if os.geteuid() == 0 and shutil.which("sudo") is None:
        # The README says "as root, leave out sudo"; as pasted, sudo must run.
        (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
        (bin_dir / "sudo").chmod(0o755)
    env = base_env(HOME=str(home), PATH=f"{bin_dir}:{os.environ['PATH']}")
    env.pop("PKG_CONFIG_PATH", None)

    builds = [b for b in system if b.role == "run"]
    files = [b for b in system if "file" in b.params]
    (echo_serve,) = [b for b in system if b.role == "serve"]
    port = one_port(echo_serve.code + files[0].code)
    ports = {"9001": str(port)}
    for b in files:
        (src / b.params["file"]).write_text(with_free_ports(b.code, ports))

    ns = namespace_prefix()
    if ns is None:
        pytest.skip("no private mount namespace here (unshare): the /usr/local install would "
                    "change the machine")
    script = overlay_script(tmp_path) + "".join(b.code for b in builds) + "set +e\n"
    script += "echo \"cflags: $(pkg-config --cflags chatws)\"\n"
    script += with_free_ports(echo_serve.code, ports)
    p = serve(echo_serve, ns + ["bash", "-c", script], src, env, port, procs, BUILD_WAIT)
    cflags = next(line for line in p.lines if line.startswith("cflags:"))
    assert "-D" not in cflags, f"pkg-config leaks internal defines: {cflags}"
    p.stop()
    assert not Path("/usr/local/lib/libchatws.so.0").exists(), "the system install leaked out"
    assert (src / "build" / "examples" / "chat_server").exists()  # where the README says

    (private_serve,) = private
    p = serve(private_serve, ["bash", "-c", with_free_ports(private_serve.code, ports)], src, env,
              port, procs, BUILD_WAIT)
    p.stop()
    # The private prefix's program finds its library by its rpath alone.
    readelf = run(["readelf", "-d", str(src / "echo")], src, env)
    assert "RUNPATH" in readelf or "RPATH" in readelf

    # The consumer snippets, against the private prefix.
    prefix = home / ".local" / "chatws"
    penv = dict(env, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(src / "echo.c", app / "app.c")
    for b in consumer:
        if b.role == "cmake":
            (app / "CMakeLists.txt").write_text(
                "cmake_minimum_required(VERSION 3.20)\nproject(app C CXX)\n"
                "add_executable(app app.c)\n" + b.code)
            run(["cmake", "-S", ".", "-B", "b", "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={prefix}"], app, penv)
            run(["cmake", "--build", "b"], app, penv)
        else:
            out = run(["bash", "-euo", "pipefail", "-c", b.code], app, penv)
            assert (app / "a.out").exists()  # the shared build
            assert "-lchatws" in out and "-lsqlite3" in out  # the --static line


def test_c_fragment_compiles(tmp_path: Path) -> None:
    for b in scenario("c-fragment"):
        src = tmp_path / "fragment.c"
        src.write_text("#include <chatws.h>\n#include <stdio.h>\n"
                       "void fragment(chatws_server* server);\n"
                       "void fragment(chatws_server* server) {\n  chatws_options opts;\n"
                       "  chatws_options_init(&opts);\n  {\n" + b.code + "  }\n  (void)opts;\n}\n")
        run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
             f"-I{REPO / 'capi' / 'include'}", str(src)], tmp_path, base_env(), WAIT)


def test_c_toplevel_compiles(tmp_path: Path) -> None:
    """Definitions at file scope (a hook); the host's own helpers they call are declared."""
    for b in scenario("c-toplevel"):
        src = tmp_path / "toplevel.c"
        src.write_text("#include <chatws.h>\n#include <stddef.h>\n"
                       "const char* lookup_user(const char* token);\n" + b.code +
                       "\nchatws_upgrade_cb the_hook(void);\n"
                       "chatws_upgrade_cb the_hook(void) { return on_upgrade; }\n")
        run(["cc", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror", "-fsyntax-only",
             f"-I{REPO / 'capi' / 'include'}", str(src)], tmp_path, base_env(), WAIT)


def test_prometheus_config_is_valid(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: scripts/bootstrap.sh installs the prometheus package")
    for b in scenario("prometheus-config"):
        conf = tmp_path / "prometheus.yml"
        conf.write_text(b.code)
        run([promtool, "check", "config", str(conf)], tmp_path, base_env(), WAIT)


def test_python_fragments_compile(tmp_path: Path) -> None:
    """Snippets that need the host's context (its users, a running server): valid Python
    whose chatws names exist."""
    import ast
    import chatws
    for b in scenario("python-fragment"):
        tree = ast.parse(b.code, filename=b.where)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "chatws":
                assert hasattr(chatws, node.attr), f"{b.where}: chatws.{node.attr} does not exist"


def test_layout_names_exist() -> None:
    for b in scenario("layout"):
        for line in b.code.splitlines():
            name = line.split()[0] if line.strip() and not line.startswith(" ") else ""
            if name:
                assert (REPO / name.rstrip("/")).exists(), f"{b.where}: {name} does not exist"


def test_ci_blocks_are_what_test_sh_runs() -> None:
    """Blocks that are the test suite itself (running them here would run CI
    inside CI): test.sh runs the same commands."""
    test_sh = (REPO / "scripts" / "test.sh").read_text()
    install_test = (REPO / "tests" / "install" / "run_install_test.cmake").read_text()
    for b in scenario("ci-build") + scenario("python-dev"):
        for line in b.code.splitlines():
            cmd = line.split("#")[0].split()
            if not cmd:
                continue
            if cmd[:2] == ["cmake", "--install"]:  # ctest's install test (label install)
                assert '"${CMAKE_COMMAND}" --install' in install_test, f"{b.where}: {line}"
            elif cmd[0] in ("cmake", "ctest"):
                assert re.search(rf"{cmd[0]} {re.escape(cmd[1])}", test_sh), f"{b.where}: {line}"
            elif cmd[:3] == ["python", "-m", "pytest"]:
                assert f"run_pytest {cmd[3]}" in test_sh, f"{b.where}: {line}"
            elif cmd[:2] == ["pip", "install"]:
                assert "-m pip install" in test_sh and "/python" in test_sh, f"{b.where}: {line}"
            else:
                raise AssertionError(f"{b.where}: a command the test does not know: {line}")


def test_python_blocks(procs: List[Proc], tmp_path: Path) -> None:
    """The Python programs, with the chatws of this test run."""
    for i, b in enumerate(scenario("python")):
        cwd = tmp_path / f"block{i}"
        cwd.mkdir()
        ports = ports_of(b.code)
        (port,) = [int(v) for v in ports.values()]
        p = serve(b, [sys.executable, "-c", with_free_ports(b.code, ports)], cwd, base_env(), port,
                  procs)
        p.stop(signal.SIGINT)  # the README says Ctrl-C stops them


def test_python_cli_block(procs: List[Proc], tmp_path: Path) -> None:
    (b,) = scenario("python-cli")
    ports = ports_of(b.code)
    (port,) = [int(v) for v in ports.values()]
    env = base_env(PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    p = serve(b, ["bash", "-c", with_free_ports(b.code, ports)], tmp_path, env, port, procs)
    p.stop(signal.SIGTERM)  # to the group: bash ends too, by the signal
    assert any("chatws: stopped" in line for line in p.lines), p.lines
    assert (tmp_path / "chat.sqlite3").exists()


@pytest.mark.parametrize("doc", ["README.md", "python/README.md"])
def test_cluster_block(doc: str, procs: List[Proc], tmp_path: Path) -> None:
    (b,) = [b for b in scenario("cluster") if b.doc == doc]
    ports = ports_of(b.code)
    assert set(ports) == {"6379", "8080", "8081"}, ports
    env = base_env(PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    p = serve(b, ["bash", "-c", with_free_ports(b.code, ports)], tmp_path, env, int(ports["8080"]), procs)
    wait_port(int(ports["8081"]), p)
    # What the README says: a message sent to one node reaches the other's members.
    urls = [f"ws://127.0.0.1:{ports[k]}/rooms/x" for k in ("8081", "8080")]
    a, b2 = (websocket.create_connection(u, timeout=WAIT, subprotocols=["chatws.v1"]) for u in urls)
    try:
        for ws in (a, b2):
            assert json.loads(ws.recv())["type"] == "hello"
        a.send(json.dumps({"user": "ann", "text": "across nodes"}))
        while True:  # bounded by the socket timeout
            f = json.loads(b2.recv())
            if f["type"] == "msg":
                break
        assert f["text"] == "across nodes"
    finally:
        a.close()
        b2.close()
    p.stop(signal.SIGTERM)  # the group: both nodes and redis-server


def test_python_tls_block(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    for cert_name, key_name in (("fullchain.pem", "privkey.pem"), ("new.pem", "new.key")):
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert.private_key_pem.write_to_path(str(tmp_path / key_name))
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / cert_name))
    (tmp_path / "web").mkdir()
    (b,) = scenario("python-tls")
    code = with_free_ports(b.code, ports_of(b.code))
    out = run([sys.executable, "-c", code], tmp_path, base_env(), WAIT)
    assert re.search(r"https://127\.0\.0\.1:\d+/ wss://127\.0\.0\.1:\d+/", out), out


def test_pip_install_blocks_in_a_fresh_venv(procs: List[Proc], tmp_path: Path) -> None:
    """`pip install .` as pasted, in a scratch copy, into a fresh venv (no
    system site packages), then the installed command runs the chat."""
    src = source_copy(tmp_path / "chatws")
    # An incremental build tree of its own, kept between runs (the only
    # setting added: scikit-build-core reads it from the environment).
    env = base_env(SKBUILD_BUILD_DIR=str(BUILD_DIR / "docs-pip"))
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if "venv" not in p)
    for b in scenario("python-pip"):
        lines = [line for line in b.code.splitlines() if line.strip()]
        last = lines[-1].split("#")[0].strip()
        # The last line is the server: the default port is 8080, made free here.
        port = free_port()
        lines[-1] = last + ("" if "--port" in last else " --port 8080")
        code = with_free_ports("\n".join(lines), {"8080": str(port)})
        p = serve(b, ["bash", "-euc", code], src, env, port, procs, BUILD_WAIT)
        assert p.stop(signal.SIGTERM) == 0
    venv_python = src / ".venv" / "bin" / "python"
    out = run([str(venv_python), "-c", "import sys, chatws; print(sys.prefix, chatws.__file__)"],
              src, env, WAIT)
    assert str(src / ".venv") in out
