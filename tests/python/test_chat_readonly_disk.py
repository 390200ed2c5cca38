"""History on a read-only file system: a real tmpfs mounted for the test and
remounted read-only (root can write through chmod, not through a read-only
mount). The server refuses to start with a clear StorageError; nothing
stored before is lost, and the history is back once the disk is writable."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

import chatws

from test_chat import chat_client, history, send_chat


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs: run it as root (CI does)")
    run("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def remount(mnt: Path, mode: str) -> None:
    run("mount", "-o", f"remount,{mode}", str(mnt))


def test_read_only_disk_is_refused_at_start_and_nothing_is_lost(tmpfs: Path, tmp_path: Any) -> None:
    db = tmpfs / "history.sqlite3"
    with chatws.Server(port=0, chat=True, history_path=db) as first:
        first.start()
        ws = chat_client(first)
        history(ws)
        send_chat(ws, "ann", "kept")
        assert history(ws)[0]["text"] == "kept"
        ws.close()

    remount(tmpfs, "ro")
    with pytest.raises(chatws.StorageError) as err:
        chatws.Server(port=0, chat=True, history_path=db)
    assert str(db) in str(err.value)  # the message names the database

    remount(tmpfs, "rw")
    with chatws.Server(port=0, chat=True, history_path=db) as again:
        again.start()
        ws = chat_client(again)
        assert [e["text"] for e in history(ws)] == ["kept"]
        ws.close()
