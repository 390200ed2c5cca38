"""Screenshots of a real conversation, saved as test artifacts for review,
with basic layout checks on a desktop and a phone-sized window."""


def fill_conversation(alice, bob):
    alice.set_name("Alice")
    bob.set_name("Bob")
    lines = [
        (alice, "Hi Bob! Did the new chat server come up?"),
        (bob, "Yes, it's running: history survives restarts now."),
        (alice, "Great. And markup like <b>this</b> stays plain text."),
        (bob, "Long words wrap too: "
              "supercalifragilisticexpialidocious-supercalifragilisticexpialidocious"),
        (alice, "Perfect, shipping it."),
    ]
    for page, text in lines:
        page.send(text)
        alice.wait_text(text, 2)


def assert_layout_fits(page):
    d = page.driver
    assert d.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    for element_id in ("text", "send", "name", "presence"):
        assert d.find_element("id", element_id).is_displayed(), element_id
    # The composer is inside the viewport (not pushed below by the messages).
    assert d.execute_script(
        "return document.getElementById('composer').getBoundingClientRect().bottom"
        " <= window.innerHeight + 1")
    # The newest message is in view: the list follows the conversation.
    assert d.execute_script(
        "const last = document.querySelector('#messages > li:last-child').getBoundingClientRect();"
        "const view = document.querySelector('.conversation').getBoundingClientRect();"
        "return last.bottom <= view.bottom + 1 && last.top >= view.top - 1")


def test_screenshots(open_page, artifacts_dir):
    alice = open_page(0, room="general")
    bob = open_page(1, room="general")
    fill_conversation(alice, bob)
    alice.wait(2, lambda d: alice.member_count() == 2)

    assert_layout_fits(alice)
    desktop = artifacts_dir / "chat.png"
    assert alice.driver.save_screenshot(str(desktop))

    alice.driver.set_window_size(390, 760)
    try:
        alice.wait(2, lambda d: d.execute_script("return window.innerWidth") <= 400)
        assert_layout_fits(alice)
        phone = artifacts_dir / "chat-phone.png"
        assert alice.driver.save_screenshot(str(phone))
    finally:
        alice.driver.set_window_size(1000, 760)

    for path in (desktop, phone):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert alice.console_errors() == []
