"""Page object for examples/web/index.html: what a user sees and does."""

from __future__ import annotations

from urllib.parse import urlencode

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CONNECT_TIMEOUT_S = 10.0


class ChatPage:
    def __init__(self, driver: WebDriver, base_url: str):
        self.driver = driver
        self.base_url = base_url

    # ---------------------------------------------------------------- actions
    def open(self, room: str | None = None, proto: str | None = None,
             wait_connected: bool = True) -> "ChatPage":
        query = {k: v for k, v in (("room", room), ("proto", proto)) if v is not None}
        self.driver.get(self.base_url + "/" + ("?" + urlencode(query) if query else ""))
        if wait_connected:
            self.wait_state("connected", CONNECT_TIMEOUT_S)
            # Connected and in sync: the first hello/snapshot has been rendered.
            self.wait(CONNECT_TIMEOUT_S, lambda d: self.generation() >= 1)
        return self

    def set_name(self, name: str) -> None:
        field = self.driver.find_element(By.ID, "name")
        field.clear()
        field.send_keys(name)

    def send(self, text: str, with_button: bool = False) -> None:
        field = self.driver.find_element(By.ID, "text")
        field.send_keys(text)
        if with_button:
            self.driver.find_element(By.ID, "send").click()
        else:
            field.send_keys(Keys.ENTER)

    # ---------------------------------------------------------------- reading
    def messages(self) -> list[dict]:
        """Rendered messages, top to bottom, as {user, text, time, id}."""
        return self.driver.execute_script("""
            return Array.from(document.querySelectorAll('#messages > li.msg')).map(li => ({
              user: li.querySelector('.user').textContent,
              text: li.querySelector('.text').textContent,
              time: li.querySelector('time').getAttribute('datetime'),
              id: li.dataset.id === undefined ? null : li.dataset.id,
            }));""")

    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages()]

    def generation(self) -> int:
        """How many times the whole list was (re)loaded from the server."""
        return int(self.driver.find_element(By.ID, "messages").get_attribute("data-generation"))

    def state(self) -> str:
        return self.driver.find_element(By.ID, "presence").get_attribute("data-state")

    def presence_text(self) -> str:
        return self.driver.find_element(By.ID, "presence-text").text

    def dot_rgb(self) -> tuple[int, int, int]:
        color = self.driver.execute_script(
            "return getComputedStyle(document.getElementById('presence-dot')).backgroundColor")
        r, g, b = (int(float(c)) for c in color[color.index("(") + 1:color.index(")")].split(",")[:3])
        return r, g, b

    def protocol(self) -> str:
        return self.driver.execute_script("return document.body.dataset.protocol || ''")

    def extensions(self) -> str:
        """The WebSocket extensions the server accepted (the socket's .extensions)."""
        return self.driver.execute_script("return document.body.dataset.extensions || ''")

    def room_name(self) -> str:
        return self.driver.find_element(By.ID, "room-name").text

    def member_count(self) -> int | None:
        members = self.driver.find_element(By.ID, "members")
        if not members.is_displayed():
            return None
        return int(self.driver.find_element(By.ID, "member-count").text)

    def console_errors(self) -> list[str]:
        """Console messages at SEVERE level since the last call (CSP
        violations, script errors, failed loads)."""
        return [e["message"] for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    # ---------------------------------------------------------------- waiting
    def wait(self, timeout: float, condition, message: str = ""):
        return WebDriverWait(self.driver, timeout, poll_frequency=0.02).until(condition, message)

    def wait_state(self, state: str, timeout: float) -> None:
        self.wait(timeout, lambda d: self.state() == state,
                  f"presence never became {state!r} within {timeout}s")

    def wait_text(self, text: str, timeout: float) -> None:
        self.wait(timeout, lambda d: text in self.texts(),
                  f"message {text!r} not shown within {timeout}s")


def is_green(rgb: tuple[int, int, int]) -> bool:
    r, g, b = rgb
    return g > r + 40 and g > b + 40


def is_red(rgb: tuple[int, int, int]) -> bool:
    r, g, b = rgb
    return r > g + 80 and r > b + 80
