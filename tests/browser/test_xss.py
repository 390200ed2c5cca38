"""User text is rendered as text: markup in a message or a name runs nothing."""

from selenium.common.exceptions import NoAlertPresentException

import pytest

XSS_TEXT = "<img src=x onerror=alert(1)>"
XSS_NAME = "<b>mallory</b>"


def assert_no_alert(driver):
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 (the property access is the check)


def assert_rendered_literally(page):
    page.wait_text(XSS_TEXT, 2)
    shown = [m for m in page.messages() if m["text"] == XSS_TEXT]
    assert len(shown) == 1 and shown[0]["user"] == XSS_NAME
    driver = page.driver
    assert driver.find_elements("css selector", "#messages img") == []
    assert driver.find_elements("css selector", "#messages b") == []
    assert driver.execute_script("return document.images.length") == 0
    assert_no_alert(driver)


def test_markup_in_messages_is_shown_literally(open_page):
    sender = open_page(0)
    sender.set_name(XSS_NAME)
    sender.send(XSS_TEXT)
    assert_rendered_literally(sender)

    # The same message arriving in the join history (another code path).
    late = open_page(1)
    assert_rendered_literally(late)
    assert late.console_errors() == []


def test_page_has_a_strict_content_security_policy(open_page):
    page = open_page(0)
    policy = page.driver.execute_script(
        "const m = document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]');"
        "return m ? m.content : null;")
    assert policy is not None
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert page.driver.find_elements("css selector", "script:not([src])") == []
    # Loading the page and its files produced no CSP violation or script error.
    assert page.console_errors() == []
