"""The fenced code blocks of README.md and python/README.md, with what the
docs test does with each.

Every block is preceded by an annotation line

    <!-- doc-test: SCENARIO ROLE [key=value ...] -->

SCENARIO groups blocks that run together (in order, in one scratch
directory); ROLE says what happens to the block:

    file=NAME   written to NAME in the scenario's directory (e.g. echo.c)
    run         a shell or Python program that must exit 0
    serve       a program that runs until stopped: the test waits for
                `line=REGEX` on its output (or for its port to accept),
                checks it with `probe=echo|chat`, then stops it
    compile     a C fragment that must compile inside a function
    paths       a directory tree whose top-level names must exist
    python-client, same-as-test-sh, cmake, pkg-config, fresh-machine:
                scenario-specific (see test_doc_blocks.py)

A block without an annotation fails the test: nothing in the READMEs can
drift out of the tests' sight.
"""

from __future__ import annotations

import re
import shlex
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

ANNOTATION = re.compile(r"^<!--\s*doc-test:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    doc: str
    line: int
    lang: str
    code: str
    scenario: str = ""
    role: str = ""
    params: Dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def parse(path: Path, name: str) -> List[Block]:
    """The blocks of one Markdown file; an unannotated block has no scenario."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: List[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        i += 1
        body: List[str] = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        block = Block(name, start + 1, m.group(1), "\n".join(body) + "\n")
        a = ANNOTATION.match(lines[start - 1]) if start > 0 else None
        if a:
            words = shlex.split(a.group(1))
            block.scenario = words[0] if words else ""
            for w in words[1:]:
                if "=" in w:
                    k, v = w.split("=", 1)
                    block.params[k] = v
                elif not block.role:
                    block.role = w
        blocks.append(block)
    return blocks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The fixed ports the READMEs use; a test replaces each by a free one (the
# only change made to a pasted block), so that the machine's other servers
# cannot collide with it.
README_PORTS = ("8080", "8081", "8443", "8765", "9001", "6379")


def with_free_ports(text: str, ports: Dict[str, str]) -> str:
    for old, new in ports.items():
        text = re.sub(rf"(?<![0-9]){old}(?![0-9])", new, text)
    return text
