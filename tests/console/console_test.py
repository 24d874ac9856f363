"""The web console in Debian's chromium, over WebDriver, against a local stack.

Run by scripts/console-test.sh, which starts the stack (no integration yet)
and exports RUNNER, MENDER, REGION, POLICY, the stand-in's tokens and device
ids, and SCREENSHOTS (where each page's screenshot goes).

The walk: a token Mender refuses; an observer, refused the admin views;
an admin who sets up (first with a wrong region, then right), watches a sync
run finish with devices counted, reads the events, changes the credentials, edits a device's desired
state (refused before sending when invalid, saved when valid), meets a
change made meanwhile by someone else (ETag), and removes the integration;
and the device page on a phone-sized screen.
"""

import json
import os
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

RUNNER = os.environ["RUNNER"]
MENDER = os.environ["MENDER"]
ADMIN = os.environ["MENDER_ADMIN_TOKEN"]
OBSERVER = os.environ["MENDER_OBSERVER_TOKEN"]
DEVICES = os.environ["MENDER_DEVICE_IDS"].split(",")
SCREENSHOTS = os.environ["SCREENSHOTS"]
API = f"{RUNNER}/api/management/v1/iot-manager"
WAIT_SECONDS = 30


def call(method, url, token, body=None, headers=None):
    """An HTTP call outside the browser (Mender, or another user of the API)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("content-type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text else None, response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read().decode() or "null"), error.headers


def accept_in_mender(device_id):
    status, device, _ = call("GET", f"{MENDER}/api/management/v2/devauth/devices/{device_id}", ADMIN)
    assert status == 200, device
    auth_set = device["auth_sets"][0]["id"]
    url = f"{MENDER}/api/management/v2/devauth/devices/{device_id}/auth/{auth_set}/status"
    status, answer, _ = call("PUT", url, ADMIN, {"status": "accepted"})
    assert status == 204, (status, answer)


def until(driver, condition, what):
    try:
        return WebDriverWait(driver, WAIT_SECONDS).until(lambda d: condition())
    except Exception:
        shot(driver, f"failed-{what.replace(' ', '-')}")
        raise AssertionError(f"timed out waiting for {what}; notice: {text(driver, 'notice')!r}")


def element(driver, id_):
    return driver.find_element(By.ID, id_)


def text(driver, id_):
    return element(driver, id_).text


def visible(driver, id_):
    return element(driver, id_).is_displayed()


def shot(driver, name):
    path = os.path.join(SCREENSHOTS, f"{name}.png")
    driver.save_screenshot(path)
    print(f"screenshot {path}")


def sign_in(driver, token):
    field = element(driver, "token")
    field.clear()
    # With the keyboard: the token, then Enter submits.
    field.send_keys(token, Keys.ENTER)


def sign_out(driver):
    element(driver, "sign-out").click()
    until(driver, lambda: visible(driver, "sign-in"), "the sign-in form")


def type_into(driver, id_, value):
    field = element(driver, id_)
    field.clear()
    field.send_keys(value)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,1500", "--lang=en-US"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def page_errors(driver):
    """What the browser refused (the CSP, say) or the script threw."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
            and "favicon" not in entry["message"]]


def walk(driver):
    driver.get(f"{RUNNER}/")
    until(driver, lambda: visible(driver, "sign-in"), "the page")
    assert driver.switch_to.active_element == element(driver, "token"), "the token field has focus"
    shot(driver, "01-sign-in")

    # A token Mender does not accept: said as a sentence.
    sign_in(driver, "not-a-token")
    until(driver, lambda: "Mender did not accept your token" in text(driver, "notice"), "the refusal")
    assert visible(driver, "sign-in")

    # An observer: may read devices, is refused the admin views.
    sign_in(driver, OBSERVER)
    until(driver, lambda: visible(driver, "admin-refused"), "the observer's refusal")
    refusal = text(driver, "admin-refused-text")
    assert "Your Mender user may not do this" in refusal and "admin" in refusal, refusal
    assert not visible(driver, "integration") and not visible(driver, "events")
    assert "not an admin" in text(driver, "who")
    shot(driver, "02-refused-as-non-admin")
    sign_out(driver)

    # The admin: nothing set up yet.
    sign_in(driver, ADMIN)
    until(driver, lambda: visible(driver, "credentials-form"), "the setup form")
    assert "Set up" in text(driver, "credentials-title")
    type_into(driver, "description", "console test")
    type_into(driver, "access_key_id", "AKIAIOSFODNN7EXAMPLE")
    type_into(driver, "secret_access_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    type_into(driver, "region", "Europe")
    type_into(driver, "device_policy_name", os.environ["POLICY"])
    element(driver, "credentials-save").click()
    until(driver, lambda: text(driver, "credentials-problems") != "", "the field problems")
    problems = text(driver, "credentials-problems")
    assert problems.startswith("Region:"), problems
    assert element(driver, "region").get_attribute("aria-invalid") == "true"
    notice = text(driver, "notice")
    assert notice.startswith("Please correct this field: Region is not an AWS region"), notice
    status, listed, _ = call("GET", f"{API}/integrations", ADMIN)
    assert (status, listed) == (200, []), "a refused setup left nothing behind"
    shot(driver, "03-setup-refused")

    type_into(driver, "region", os.environ["REGION"])
    element(driver, "credentials-save").click()
    until(driver, lambda: visible(driver, "integration-facts"), "the integration")
    assert "is set up" in text(driver, "notice")
    status, listed, _ = call("GET", f"{API}/integrations", ADMIN)
    assert status == 200 and len(listed) == 1, listed
    integration_id = listed[0]["id"]
    assert integration_id in text(driver, "integration-facts")
    assert "No sync run yet" in text(driver, "counts-about")
    shot(driver, "04-integration")

    # Devices accepted in Mender are provisioned (its webhooks); a sync
    # run then counts them, watched to its end.
    for device in DEVICES[:2]:
        accept_in_mender(device)
    for device in DEVICES[:2]:
        deadline = time.time() + WAIT_SECONDS
        while call("GET", f"{API}/devices/{device}/state", ADMIN)[0] != 200:
            assert time.time() < deadline, f"{device} was not provisioned"
            time.sleep(0.2)
    element(driver, "run-start").click()
    until(driver, lambda: "done" in text(driver, "run-label"), "the run to finish")
    progress = element(driver, "run-progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == "3", \
        "3 devices in Mender, all walked"
    assert text(driver, "count-provisioned") == "2", text(driver, "count-provisioned")
    assert [text(driver, f"count-{state}") for state in ["disabled", "conflict", "failed"]] == ["0"] * 3
    until(driver, lambda: len(driver.find_elements(By.CSS_SELECTOR, "#event-rows tr")) == 2,
          "the provisioning events")
    assert "provisioned" in text(driver, "event-rows")
    shot(driver, "05-run-done")

    # New credentials, checked by the same rules, the rest kept.
    element(driver, "show-credentials").click()
    until(driver, lambda: visible(driver, "credentials-form"), "the credentials form")
    assert element(driver, "region").get_attribute("value") == os.environ["REGION"]
    type_into(driver, "access_key_id", "AKIAI44QH8DHBEXAMPLE")
    type_into(driver, "secret_access_key", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY")
    element(driver, "credentials-save").click()
    until(driver, lambda: "credentials are saved" in text(driver, "notice"), "the new credentials")
    assert "AKIAI44QH8DHBEXAMPLE" in text(driver, "integration-facts")
    assert not visible(driver, "credentials-form")

    # A device's shadow: reported beside desired; invalid edits are refused
    # before sending.
    device = DEVICES[0]
    type_into(driver, "device-id", device)
    element(driver, "device-id").send_keys(Keys.ENTER)
    until(driver, lambda: visible(driver, "shadow"), "the shadow")
    assert json.loads(text(driver, "reported")) == {}
    type_into(driver, "desired", '{"interval": ')
    until(driver, lambda: "Not valid JSON" in text(driver, "desired-check"), "the JSON check")
    assert not element(driver, "desired-save").is_enabled()
    type_into(driver, "desired", "[1, 2]")
    until(driver, lambda: "must be a JSON object" in text(driver, "desired-check"), "the object check")
    # Pasted rather than typed: 9,000 keystrokes say nothing more.
    driver.execute_script("arguments[0].value = arguments[1];"
                          "arguments[0].dispatchEvent(new Event('input'));",
                          element(driver, "desired"), json.dumps({"blob": "x" * 9000}))
    until(driver, lambda: "Too large" in text(driver, "desired-check"), "the size check")
    assert not element(driver, "desired-save").is_enabled()
    shot(driver, "06-shadow-refused-before-sending")

    type_into(driver, "desired", '{"interval": 60}')
    until(driver, lambda: "of 8192 bytes" in text(driver, "desired-check"), "the size shown")
    element(driver, "desired-save").click()
    until(driver, lambda: "desired state is saved" in text(driver, "notice"), "the save")
    path = f"{API}/devices/{device}/state/{integration_id}"
    status, state, _ = call("GET", path, ADMIN)
    assert state["desired"] == {"interval": 60}, state
    shot(driver, "07-shadow-saved")

    # Someone else changes it meanwhile: the page's save is refused (ETag),
    # the edit is kept, and a reload shows their change.
    status, _, _ = call("PATCH", path, ADMIN, {"desired": {"led": "red"}})
    assert status == 200
    type_into(driver, "desired", '{"interval": 30}')
    element(driver, "desired-save").click()
    until(driver, lambda: "Someone else changed" in text(driver, "notice"), "the conflict")
    assert json.loads(element(driver, "desired").get_attribute("value")) == {"interval": 30}
    status, state, _ = call("GET", path, ADMIN)
    assert state["desired"] == {"interval": 60, "led": "red"}, "the other change stands"
    shot(driver, "08-shadow-conflict")
    element(driver, "desired-reload").click()
    until(driver, lambda: json.loads(element(driver, "desired").get_attribute("value"))
          == {"interval": 60, "led": "red"}, "the reloaded state")

    # On a phone-sized screen: one column, nothing wider than the screen.
    driver.set_window_size(390, 1400)
    until(driver, lambda: driver.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"),
        "the page to fit a phone's width")
    reported, desired = element(driver, "reported"), element(driver, "desired")
    assert desired.location["y"] > reported.location["y"], "desired below reported on a phone"
    shot(driver, "09-phone")
    driver.set_window_size(1280, 1500)

    # The observer reads the same shadow but may not edit it.
    sign_out(driver)
    sign_in(driver, OBSERVER)
    until(driver, lambda: visible(driver, "device"), "the observer's device view")
    type_into(driver, "device-id", device)
    element(driver, "device-id").send_keys(Keys.ENTER)
    until(driver, lambda: visible(driver, "shadow"), "the observer's shadow")
    assert element(driver, "desired").get_attribute("readonly") is not None
    assert not visible(driver, "desired-save")
    assert "needs an admin" in text(driver, "desired-check")
    sign_out(driver)

    # The admin removes the integration: the setup form comes back.
    sign_in(driver, ADMIN)
    until(driver, lambda: visible(driver, "remove"), "the remove button")
    element(driver, "remove").click()
    until(driver, lambda: visible(driver, "remove-confirm"), "the confirmation")
    assert driver.switch_to.active_element == element(driver, "remove-no"), "Cancel has focus"
    element(driver, "remove-yes").click()
    until(driver, lambda: "is removed" in text(driver, "notice"), "the removal")
    assert visible(driver, "credentials-form")
    status, listed, _ = call("GET", f"{API}/integrations", ADMIN)
    assert (status, listed) == (200, [])

    errors = page_errors(driver)
    # The refusals above are the API's answers (401, 403, 400, 412), which
    # the browser logs as failed loads; anything else is the page's fault.
    unexpected = [e for e in errors if not any(f" {code} " in e or f"({code})" in e
                                               for code in (400, 401, 403, 404, 412))]
    assert not unexpected, unexpected


def main():
    driver = browser()
    try:
        walk(driver)
    finally:
        driver.quit()
    print("console: every step passed in chromium")


if __name__ == "__main__":
    sys.exit(main())
