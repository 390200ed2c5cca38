"""The page notices a server restart, reconnects by itself and resyncs the
history from the restarted server."""

from chat_page import is_green, is_red

DROP_TIMEOUT_S = 5.0
# Backoff is capped at 10 s (full jitter), plus the handshake.
RECONNECT_TIMEOUT_S = 15.0


def test_indicator_and_history_survive_server_restart(open_page, chat_server, artifacts_dir):
    page = open_page(0)
    page.set_name("carol")
    before = ["said before the restart", "and this one too"]
    for text in before:
        page.send(text)
        page.wait_text(text, 2)
    assert is_green(page.dot_rgb())
    generation = page.generation()

    chat_server.stop()
    page.wait_state("disconnected", DROP_TIMEOUT_S)
    page.wait(1, lambda d: is_red(page.dot_rgb()), "dot not red while disconnected")
    # "reconnecting in Ns": the backoff is capped at 10 s.
    status = page.presence_text()
    assert status.startswith("reconnecting"), status
    if status != "reconnecting…":
        assert 1 <= int(status.removeprefix("reconnecting in ").removesuffix("s")) <= 10, status
    assert page.driver.find_element("id", "send").get_attribute("disabled") is not None
    assert page.member_count() is None  # no stale member count while offline
    assert page.driver.save_screenshot(str(artifacts_dir / "chat-disconnected.png"))

    chat_server.start()  # same port, same history file
    page.wait_state("connected", RECONNECT_TIMEOUT_S)
    page.wait(1, lambda d: is_green(page.dot_rgb()), "dot not green after reconnect")
    page.wait(2, lambda d: page.member_count() == 1, "member count not back after reconnect")
    # The list was reloaded from the restarted server, and holds each message once.
    page.wait(2, lambda d: page.generation() > generation, "history not resynced")
    assert page.texts() == before

    page.send("said after the restart")
    page.wait_text("said after the restart", 2)

    # A newcomer sees everything: the history really came from the server.
    newcomer = open_page(1)
    newcomer.wait_text("said after the restart", 2)
    assert newcomer.texts() == before + ["said after the restart"]
