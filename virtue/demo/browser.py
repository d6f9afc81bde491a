"""Driving the demo page in headless Chromium (Debian's chromium and chromium-driver, through Selenium): used
by the browser test and by scripts/demo_screenshot.py, which takes the README's picture."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def have_chromium() -> bool:
    return CHROMIUM.is_file() and CHROMEDRIVER.is_file()


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def wait_until_answering(url: str, proc: subprocess.Popen, timeout: float) -> float:
    """Seconds until `url` answers 200; RuntimeError if the server process exits first or time runs out."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"virtue demo exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"virtue demo did not answer within {timeout:.0f} s")


def chrome(width: int = 1400, height: int = 1000):
    """Headless Chromium at a fixed window size; the driver's path is given, so selenium-manager fetches nothing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)


def drag(driver, box: list[float], width: int) -> None:
    """Press at the box's first corner, move, release at the other: `box` in image pixels of an image `width`
    wide, converted to CSS pixels of the canvas, whose centre is where move_to_element_with_offset counts from."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, "canvas")
    scale = driver.execute_script("return arguments[0].clientWidth", canvas) / width
    half_w = driver.execute_script("return arguments[0].clientWidth / 2", canvas)
    half_h = driver.execute_script("return arguments[0].clientHeight / 2", canvas)
    x1, y1, x2, y2 = (round(v * scale) for v in box)
    dx, dy = x2 - x1, y2 - y1
    chain = ActionChains(driver).move_to_element_with_offset(canvas, x1 - half_w, y1 - half_h).click_and_hold()
    chain.move_by_offset(dx // 2, dy // 2).move_by_offset(dx - dx // 2, dy - dy // 2).release().perform()


def select_image(driver, key: str, count: int, timeout: float) -> None:
    """Choose gallery image `key` (e.g. "e3") once the page lists all `count` images, and wait until it is shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(driver, timeout)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#image-select option")) == count)
    Select(driver.find_element(By.ID, "image-select")).select_by_value(key)
    wait.until(lambda d: d.find_element(By.ID, "status").get_attribute("data-image") == key)


def wait_for_answers(driver, answers: int, timeout: float) -> None:
    """Until the page has rendered `answers` answers (its status element counts them)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.ID, "status").get_attribute("data-answers") == str(answers)
    )
