"""Two independent browsers chat through a real chat server."""

from chat_page import is_green

DELIVERY_TIMEOUT_S = 1.0  # a message must reach the other page within 1 s


def test_two_pages_chat_with_each_other(open_page):
    alice = open_page(0)
    bob = open_page(1)
    assert alice.protocol() == "chatws.v1", "both formats offered: the server should pick v1"
    assert is_green(alice.dot_rgb()) and alice.presence_text() == "connected"
    alice.wait(2, lambda d: alice.member_count() == 2, "alice never saw 2 members")

    alice.set_name("alice")
    bob.set_name("bob")
    alice.send("hello from alice")
    bob.wait_text("hello from alice", DELIVERY_TIMEOUT_S)
    bob.send("hi alice, bob here", with_button=True)
    alice.wait_text("hi alice, bob here", DELIVERY_TIMEOUT_S)

    for page in (alice, bob):
        page.wait(DELIVERY_TIMEOUT_S, lambda d, p=page: len(p.messages()) == 2)
        shown = page.messages()
        assert [(m["user"], m["text"]) for m in shown] == [
            ("alice", "hello from alice"), ("bob", "hi alice, bob here")]
        assert all(m["time"] and m["id"] is not None for m in shown)
    assert alice.driver.find_element("id", "text").get_attribute("value") == ""

    # Bob leaves: alice's member count follows.
    bob.driver.get("about:blank")
    alice.wait(2, lambda d: alice.member_count() == 1, "alice never saw bob leave")


def test_name_is_remembered_across_reloads(open_page):
    page = open_page(0)
    page.set_name("remembered-name")
    page.send("hi")
    page.wait_text("hi", 2)
    page.open()
    assert page.driver.find_element("id", "name").get_attribute("value") == "remembered-name"


def test_rooms_are_separate(open_page):
    alpha = open_page(0, room="alpha")
    beta = open_page(1, room="beta")
    assert alpha.room_name() == "alpha" and beta.room_name() == "beta"
    alpha.set_name("a")
    beta.set_name("b")
    alpha.send("only in alpha")
    alpha.wait_text("only in alpha", DELIVERY_TIMEOUT_S)
    # The server handled alpha's message before beta's: once beta sees its
    # own, it would already have seen alpha's had it leaked.
    beta.send("only in beta")
    beta.wait_text("only in beta", DELIVERY_TIMEOUT_S)
    assert beta.texts() == ["only in beta"]
    assert alpha.texts() == ["only in alpha"]
    assert alpha.member_count() == 1 and beta.member_count() == 1


def test_invalid_room_name_is_reported_not_retried(open_page):
    page = open_page(0, room="no spaces allowed", wait_connected=False)
    error = page.driver.find_element("id", "error")
    page.wait(2, lambda d: error.is_displayed(), "no error shown for an invalid room")
    assert "Invalid room name" in error.text
    assert page.state() == "disconnected" and page.presence_text() == "not connected"


def test_chromium_negotiates_permessage_deflate_and_chats(open_page):
    # Chromium offers "permessage-deflate; client_max_window_bits"; the
    # server's default (shared) mode accepts it with no context takeover.
    alice = open_page(0)
    bob = open_page(1)
    assert alice.extensions() == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "client_max_window_bits=15")
    alice.set_name("alice")
    bob.set_name("bob")
    long_text = " ".join(["a message long enough to be compressed on its way to bob"] * 4)
    alice.send(long_text)
    bob.wait_text(long_text, DELIVERY_TIMEOUT_S)
    bob.send("and a short one back")
    alice.wait_text("and a short one back", DELIVERY_TIMEOUT_S)
