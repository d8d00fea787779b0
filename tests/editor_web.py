"""The editor pages in a real browser: chromium driven through WebDriver (Debian's
chromedriver, selenium from PyPI). Run by tests/editor_web.rs, which starts skillsd,
makes the users and checks the commits with git afterwards.

Environment: BASE (the server's http://127.0.0.1:PORT), ALICE_LOGIN and RITA_LOGIN
(web-login paths), BOB_TOKEN (a write token), SKILL_SLUG and SKILL_PATH (the skill to
edit), REPORT (where to write the change numbers, as JSON), SCREENSHOTS (optional: a
folder for the README's pictures: scripts/screenshots), NEW_TITLE (the edited skill's
new title), ARCHIVE_SLUG and ARCHIVE_TITLE (the skill to archive), EDITOR_USER (the
writer's name, default alice).
"""

import base64
import json
import os
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ["BASE"]
SLUG = os.environ["SKILL_SLUG"]
PATH = os.environ["SKILL_PATH"]
NEW_TITLE = os.environ["NEW_TITLE"]
ARCHIVE_SLUG = os.environ["ARCHIVE_SLUG"]
ARCHIVE_TITLE = os.environ["ARCHIVE_TITLE"]
USER = os.environ.get("EDITOR_USER", "alice")
SHOTS = os.environ.get("SCREENSHOTS")


def step(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--window-size=1280,1100", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait(driver, condition, what, seconds=15):
    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.1).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what} on {driver.current_url}:\n"
                             f"{driver.find_element(By.TAG_NAME, 'body').text[:3000]}")


def shot(driver, name, height=None):
    if not SHOTS:
        return
    # The whole page (at most `height` pixels of it), from its top.
    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(full + 20, height or 1600))
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.3)
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))
    driver.set_window_size(1280, 1100)
    step(f"screenshot {name}")


def problems(driver, field):
    return driver.find_elements(By.CSS_SELECTOR, f'#problems li[data-field="{field}"]')


def type_into(element, text, clear=False):
    if clear:
        element.clear()
    element.send_keys(text)


def change_number(driver):
    path = driver.current_url.split(BASE, 1)[1]
    assert path.startswith("/changes/"), path
    return int(path[len("/changes/"):].split("?")[0])


def landed_on_change(driver, title_part):
    wait(driver, EC.url_contains("/changes/"), "the change's page")
    heading = driver.find_element(By.TAG_NAME, "h1").text
    assert title_part in heading, heading
    assert driver.find_element(By.ID, "author").text == USER
    return change_number(driver)


def api(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method, headers={
        "Authorization": "Bearer " + os.environ["BOB_TOKEN"],
        "Content-Type": "application/json",
    })
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def main():
    report = {}
    driver = browser()
    try:
        # Sign in: the web-login link opened in the browser.
        step("alice signs in")
        driver.get(BASE + os.environ["ALICE_LOGIN"])
        wait(driver, EC.text_to_be_present_in_element((By.ID, "viewer"), USER + " (writer)"),
             "the signed-in name")

        # Open a skill and edit it.
        step("alice opens the skill and clicks Edit")
        driver.get(f"{BASE}/skills/{SLUG}")
        driver.find_element(By.ID, "edit").click()
        wait(driver, EC.presence_of_element_located((By.ID, "editor")), "the editor")
        assert driver.find_element(By.ID, "path-shown").text == PATH
        title = driver.find_element(By.ID, "f-title")
        assert title.get_attribute("value"), "the title is filled in"
        # The schema's enum is a choice.
        assert "ARCHIVED" in [o.text for o in Select(driver.find_element(By.ID, "f-status")).options]
        # The current file has no problem.
        assert driver.find_element(By.ID, "check-status").text == "No problems."

        # A broken field: the problem appears as the user types, and goes when fixed.
        step("alice clears the title: a live problem appears")
        title.clear()
        title.send_keys(" ")
        title.send_keys("\b")
        wait(driver, lambda d: problems(d, "title"), "a problem with the title")
        item = problems(driver, "title")[0]
        assert item.get_attribute("data-level") == "error", item.text
        shot(driver, "editor-problem", 900)
        step("alice types a new title: the problem goes")
        type_into(title, NEW_TITLE)
        wait(driver, lambda d: not problems(d, "title"), "the title's problem to go")
        wait(driver, EC.text_to_be_present_in_element((By.ID, "check-status"), "No problems."),
             "no problems")

        # The body, previewed as it is typed; raw HTML is shown as text.
        step("alice changes the body: the preview follows")
        body = driver.find_element(By.ID, "body")
        body.send_keys(Keys_END())
        body.send_keys("\n<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">")
        wait(driver, EC.text_to_be_present_in_element((By.ID, "preview"), "<img src=x"),
             "the raw HTML shown as text in the preview")
        assert not driver.find_elements(By.CSS_SELECTOR, "#preview img")
        assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-pwned") is None
        # Take the HTML out again, and add the line the test expects.
        value = body.get_attribute("value")
        body.clear()
        body.send_keys(value[: value.index("\n<img")] + "- Say what you tested.\n")
        wait(driver, EC.text_to_be_present_in_element((By.ID, "preview"), "Say what you tested."),
             "the preview of the new line")
        wait(driver, EC.text_to_be_present_in_element((By.ID, "check-status"), "No problems."),
             "no problems")
        shot(driver, "editor")

        # Submit: the change's page.
        step("alice proposes the change")
        driver.find_element(By.ID, "save").click()
        report["edited"] = landed_on_change(driver, "Update " + PATH)
        body_text = driver.find_element(By.TAG_NAME, "body").text
        assert NEW_TITLE in body_text, body_text
        assert "Say what you tested." in body_text, body_text
        shot(driver, "editor-change", 1300)

        # A new skill, from the list.
        step("alice makes a new skill")
        driver.get(f"{BASE}/skills")
        driver.find_element(By.ID, "new-skill").click()
        wait(driver, EC.presence_of_element_located((By.ID, "editor")), "the new skill's form")
        path = driver.find_element(By.ID, "path")
        type_into(path, "ops/First Aid.md")
        wait(driver, lambda d: problems(d, "path") or problems(d, "slug") or problems(d, "title"),
             "a problem with the new skill")
        path.clear()
        type_into(path, "skills/ops/first-aid.md")
        type_into(driver.find_element(By.ID, "f-title"), "First aid")
        type_into(driver.find_element(By.ID, "f-tags"), "ops, safety")
        Select(driver.find_element(By.ID, "f-status")).select_by_value("DRAFT")
        type_into(driver.find_element(By.ID, "body"), "# First aid\n\nStop the bleeding first.\n")
        wait(driver, EC.text_to_be_present_in_element((By.ID, "check-status"), "No problems."),
             "no problems with the new skill")
        driver.find_element(By.ID, "save").click()
        report["created"] = landed_on_change(driver, "Add skills/ops/first-aid.md")

        # Archive another skill.
        step("alice archives a skill")
        driver.get(f"{BASE}/skills/{ARCHIVE_SLUG}")
        driver.find_element(By.ID, "archive").click()
        report["archived"] = landed_on_change(driver, "Archive " + ARCHIVE_TITLE)
        assert "ARCHIVED" in driver.find_element(By.TAG_NAME, "body").text

        # A conflict: the file changes (Bob, through the contents API, published at
        # once) while Alice's editor is open.
        step("alice opens the editor; bob publishes an edit meanwhile")
        driver.get(f"{BASE}/skills/{SLUG}/edit")
        wait(driver, EC.presence_of_element_located((By.ID, "editor")), "the editor")
        body = driver.find_element(By.ID, "body")
        body.send_keys(Keys_END())
        body.send_keys("- Mine: keep the subject short.\n")
        current = api("GET", f"/api/repos/skills/contents/{PATH}")
        text = base64.b64decode(current["content"]).decode()
        bob = api("POST", "/api/repos/skills/changes", {
            "title": "Bob's edit", "publish": True,
            "files": [{"operation": "update", "path": PATH, "sha": current["sha"],
                       "content": base64.b64encode(text.replace(
                           "\n---\n", "\n---\nBob: link the ticket.\n", 1).encode()).decode()}],
        })
        assert bob.get("published") is True, bob
        now = api("GET", f"/api/repos/skills/contents/{PATH}")["sha"]
        step("alice saves: changed since you opened it")
        driver.find_element(By.ID, "save").click()
        stale = wait(driver, EC.presence_of_element_located((By.ID, "stale")), "the conflict")
        assert "changed since you opened it" in stale.text, stale.text
        diff = driver.find_element(By.ID, "stale-diff")
        added = [d.text for d in diff.find_elements(By.CSS_SELECTOR, ".add")]
        assert any("Bob: link the ticket." in a for a in added), added
        kept = driver.find_element(By.ID, "body").get_attribute("value")
        assert kept.endswith("- Mine: keep the subject short.\n"), kept
        sha = driver.find_element(By.CSS_SELECTOR, 'input[name="sha"]').get_attribute("value")
        assert sha == now, (sha, now)
        shot(driver, "editor-conflict", 1100)
        step("alice saves again, deliberately")
        driver.find_element(By.ID, "save").click()
        report["conflict"] = landed_on_change(driver, "Update " + PATH)

        # A reader: no buttons, and a forged post is refused.
        step("rita (reader) signs in")
        driver.delete_all_cookies()
        driver.get(BASE + os.environ["RITA_LOGIN"])
        wait(driver, EC.text_to_be_present_in_element((By.ID, "viewer"), "rita (reader)"),
             "the reader's name")
        driver.get(f"{BASE}/skills/{SLUG}")
        assert driver.find_elements(By.TAG_NAME, "h1")
        assert not driver.find_elements(By.ID, "edit")
        assert not driver.find_elements(By.ID, "archive")
        driver.get(f"{BASE}/skills")
        assert not driver.find_elements(By.ID, "new-skill")
        driver.get(f"{BASE}/skills/{SLUG}/edit")
        assert "read-only access" in driver.find_element(By.ID, "message").text
        step("rita forges a post with her own session and CSRF token")
        csrf = driver.find_element(By.CSS_SELECTOR, 'input[name="csrf"]').get_attribute("value")
        status = driver.execute_async_script("""
            var done = arguments[arguments.length - 1];
            var body = new URLSearchParams({csrf: arguments[0], repo: "skills", path: arguments[1],
                sha: arguments[2], keys: "[]", "f.title": "Forged", body: "forged"});
            fetch("/edit", {method: "POST", body: body, credentials: "same-origin"})
                .then(function (r) { done(r.status); }, function (e) { done(String(e)); });
        """, csrf, PATH, now)
        assert status == 403, status
        report["forged_status"] = status
        # No script error and no Content-Security-Policy violation on any page.
        errors = [e for e in driver.get_log("browser")
                  if e.get("level") == "SEVERE" and e.get("source") != "network"]
        assert not errors, errors
    finally:
        driver.quit()
    with open(os.environ["REPORT"], "w") as f:
        json.dump(report, f)
    step(f"done: {report}")


def Keys_END():
    from selenium.webdriver.common.keys import Keys
    return Keys.CONTROL + Keys.END


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e!r}", file=sys.stderr)
        raise
