"""The bundled chat page over https://: two headless Chromium pages chat
through wss:// on the same port. The browsers trust only the test key (the
--ignore-certificate-errors-spki-list pin of its SPKI hash), not any
certificate: a different key on the server would fail the page load."""

from __future__ import annotations

import base64
import hashlib

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chat_page import ChatPage, is_green
from conftest import _Browsers
from server_process import ChatServerProcess, ServerUnavailable

DELIVERY_TIMEOUT_S = 1.0


def spki_hash(cert_pem: bytes) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)), the form Chromium's pin list takes."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture
def tls_chat(tmp_path):
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.private_key_pem.write_to_path(str(key))
    with open(cert, "wb") as f:
        for blob in leaf.cert_chain_pems:
            f.write(blob.bytes())
    try:
        server = ChatServerProcess(tmp_path, extra_args=["--tls-cert", str(cert), "--tls-key", str(key)],
                                   scheme="https")
        server.start()
    except ServerUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    pool = _Browsers([f"--ignore-certificate-errors-spki-list={spki_hash(leaf.cert_chain_pems[0].bytes())}"])
    yield server, pool
    pool.close()
    server.stop()


def test_two_pages_chat_over_https_and_wss(tls_chat):
    server, pool = tls_chat
    alice = ChatPage(pool.get(0), server.base_url).open()
    bob = ChatPage(pool.get(1), server.base_url).open()
    for page in (alice, bob):
        assert page.driver.execute_script("return location.protocol") == "https:"
        assert is_green(page.dot_rgb()) and page.presence_text() == "connected"
    assert alice.protocol() == "chatws.v1"
    alice.wait(2, lambda d: alice.member_count() == 2, "alice never saw 2 members")
    alice.set_name("alice")
    bob.set_name("bob")
    alice.send("hello over wss")
    bob.wait_text("hello over wss", DELIVERY_TIMEOUT_S)
    bob.send("and back")
    alice.wait_text("and back", DELIVERY_TIMEOUT_S)
    assert not alice.console_errors() and not bob.console_errors()
