"""Drive the dashboards in a real browser: Debian's chromium under Python playwright.

Shared by the browser tests and `tests/bench/bench_dashboard.py`:

- `launch` starts `/usr/bin/chromium` headless with flags that keep it off the (closed) network;
- `dashboard_server` serves a dashboard with `rata dashboard ...` in a subprocess on a free
  127.0.0.1 port and stops it with Ctrl-C;
- `block_outside` refuses, and records, every request that would leave 127.0.0.1 (a page that
  needs a CDN fails the tests instead of silently waiting for one);
- `click_and_time` clicks a button inside the page and reports, per condition, the milliseconds
  until the first animation frame in which the condition held (the frame that shows it);
- `stats`, `source_column`: what the page shows, read from the DOM and from BokehJS.

`make browser` installs chromium when it is missing; playwright comes with the dev extras. Never
run `playwright install`: it downloads browsers from the internet.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LOCAL_PREFIXES = ("http://127.0.0.1:", "ws://127.0.0.1:", "http://localhost:", "ws://localhost:", "blob:", "data:")
MISSING = "Debian's chromium is missing at /usr/bin/chromium: run `make browser` (never `playwright install`)"


def chromium_version() -> str:
    """Return what `chromium --version` prints ("missing" when it is not installed)."""
    try:
        out = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "missing"
    return out.stdout.strip() or "unknown"


def launch(playwright: Any) -> Any:
    """Return a headless chromium browser (Debian's, not a downloaded one)."""
    if not CHROMIUM.exists():
        raise RuntimeError(MISSING)
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(FLAGS), headless=True)


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def dashboard_server(
    app: str, log: Path, *, timeout: float = 240.0, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Serve `rata dashboard APP` on a free port; yield the page URL; stop it with Ctrl-C.

    The server's output goes to `log`; if it dies or is not up within `timeout` seconds, the
    error carries the end of that log.
    """
    port = free_port()
    command = [sys.executable, "-c", "from runner.cli import main; main()", "dashboard", app, "--port", str(port)]
    url = f"http://127.0.0.1:{port}/{app}"
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        deadline = time.monotonic() + timeout
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text()[-3000:]
                raise RuntimeError(f"dashboard server did not come up at {url} (exit {proc.poll()}):\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def block_outside(page: Any) -> list[str]:
    """Abort every request that leaves 127.0.0.1 and return the (growing) list of their URLs."""
    refused: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(LOCAL_PREFIXES):
            r.continue_()
        else:
            refused.append(url)
            r.abort()

    page.route("**/*", route)
    return refused


# `deep(selector)` finds elements across open shadow roots (Panel renders each component in one);
# `a >>> b` finds `b` inside the shadow root (or subtree) of each `a`.
DEEP_JS = """
const walkAll = (root, sel) => {
  const out = [];
  const walk = (r) => {
    r.querySelectorAll(sel).forEach((e) => out.push(e));
    r.querySelectorAll('*').forEach((e) => { if (e.shadowRoot) walk(e.shadowRoot); });
  };
  walk(root);
  return out;
};
const deep = (sel) => {
  let roots = [document];
  for (const part of sel.split('>>>')) roots = roots.flatMap((r) => walkAll(r.shadowRoot || r, part.trim()));
  return roots;
};
const shown = (sel) => deep(sel).some((e) => e.getClientRects().length > 0);
const bokehColumn = (name, column) => {
  const doc = window.Bokeh && window.Bokeh.documents[0];
  const source = doc && doc.get_model_by_name(name);
  return source ? Array.from(source.data.get ? source.data.get(column) : source.data[column]) : null;
};
"""

_CLICK_JS = (
    "async ({button, conditions, before, until, timeout}) => {"
    + DEEP_JS
    + """
  new Function('deep', 'shown', 'bokehColumn', before)(deep, shown, bokehColumn);
  const checks = Object.entries(conditions).map(([k, body]) => [k, new Function('deep', 'shown', 'bokehColumn', body)]);
  const target = deep(button)[0];
  if (!target) throw new Error('no element matches ' + button);
  const seen = {};
  return await new Promise((resolve) => {
    const t0 = performance.now();
    const tick = () => {
      const now = performance.now() - t0;
      for (const [k, f] of checks) if (!(k in seen) && f(deep, shown, bokehColumn)) seen[k] = now;
      if (until.every((k) => k in seen) || now > timeout) resolve(seen);
      else requestAnimationFrame(tick);
    };
    target.click();
    requestAnimationFrame(tick);
  });
}"""
)


def click_and_time(
    page: Any,
    button: str,
    conditions: Mapping[str, str],
    *,
    before: str = "",
    until: Sequence[str] | None = None,
    timeout_ms: float = 60_000,
) -> dict[str, float]:
    """Click `button` (a `deep` selector) in the page; return ms until each condition first held.

    A condition is the body of a JS function of `deep`, `shown` and `bokehColumn` returning a
    boolean; it is checked at every animation frame, so the time is that of the first frame
    showing the change (to within one frame). `before` (a body of the same kind) runs just before
    the click, e.g. to mark the canvases already drawn. Checking stops when the conditions named in
    `until` (default: all) have held, or after `timeout_ms`; conditions that never held are missing.
    """
    wanted = list(conditions) if until is None else list(until)
    arg = {"button": button, "conditions": dict(conditions), "before": before, "until": wanted, "timeout": timeout_ms}
    result = page.evaluate(_CLICK_JS, arg)
    return {str(k): float(v) for k, v in result.items()}


def wait_until(page: Any, condition: str, timeout_ms: float = 60_000) -> None:
    """Wait until the JS `condition` (same helpers as `click_and_time`) holds in the page."""
    page.wait_for_function(
        "(body) => {"
        + DEEP_JS
        + " return new Function('deep', 'shown', 'bokehColumn', body)(deep, shown, bokehColumn); }",
        arg=condition,
        timeout=timeout_ms,
    )


def stats(page: Any) -> dict[str, str]:
    """Return the exact values of the stats table (`data-value`) by statistic name."""
    rows = page.locator("table.rata-stats tr[data-stat]").evaluate_all(
        "rows => rows.map(r => [r.dataset.stat, r.querySelector('td').dataset.value])"
    )
    return {str(name): str(value) for name, value in rows}


def stats_run(page: Any) -> int:
    """Return the run number the stats table shows (0 before any run)."""
    return int(page.locator("table.rata-stats").get_attribute("data-run") or 0)


def source_column(page: Any, name: str, column: str) -> list[float] | None:
    """Return a column of the named Bokeh data source as the browser holds it."""
    value = page.evaluate("([name, column]) => {" + DEEP_JS + " return bokehColumn(name, column); }", [name, column])
    return None if value is None else [float(v) for v in value]


def type_into(page: Any, css_class: str, value: object) -> None:
    """Type `value` into the input of the widget marked `css_class` and commit it (Enter)."""
    field = page.locator(f".{css_class} input").first
    field.fill(str(value))
    field.press("Enter")


def page_text(page: Any) -> str:
    """Return all text of the page, including the text inside shadow roots."""
    return str(
        page.evaluate(
            "() => {" + DEEP_JS + " return [document.body, ...deep('*').filter((e) => e.shadowRoot)"
            ".map((e) => e.shadowRoot)].map((r) => r.textContent).join('\\n'); }"
        )
    )


def button_running(css_class: str) -> str:
    """Return a condition: the button marked `css_class` is disabled and reads "Running..."."""
    return f"return deep('.{css_class} >>> button').some((b) => b.disabled && b.textContent.includes('Running'));"


def button_idle(css_class: str, label: str) -> str:
    """Return a condition: the button marked `css_class` is enabled and reads `label`."""
    return f"return deep('.{css_class} >>> button').some((b) => !b.disabled && b.textContent.trim() === {label!r});"
