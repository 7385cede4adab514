"""Helpers of the usability tests (test_usability.py): axe-core, page width, line breaks, and a
collector of problems that names the issue item each check belongs to.

axe-core comes from npm (``node_modules/axe-core``, pinned in package.json with
``@axe-core/playwright``). Its source is evaluated through the DevTools protocol
(``page.evaluate``), which the page's Content-Security-Policy does not govern: the pages keep
their real CSP, so a CSP violation by the app still shows up as a console error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tests.vectors import REPO_ROOT

AXE_FILE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
#: The narrowest phone the pages must fit without sideways scrolling (CSS px).
NARROW = 360
#: axe-core impacts that fail a page.
BLOCKING = ("serious", "critical")


@cache
def axe_source() -> str:
    if not AXE_FILE.is_file():
        raise AssertionError("axe-core is not installed: run `npm ci` (scripts/setup does it)")
    return AXE_FILE.read_text(encoding="utf-8")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now (WCAG 2.x A/AA and
    best-practice rules): ``[{"id", "impact", "help", "nodes": [selector + summary]}]``."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    return page.evaluate(
        """async (blocking) => {
            const result = await window.axe.run(document, { resultTypes: ['violations'] });
            return result.violations
              .filter((v) => blocking.includes(v.impact))
              .map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 4).map((n) => `${n.target.join(' ')}: ${n.failureSummary ?? ''}`),
              }));
        }""",
        list(BLOCKING),
    )


def scroll_width(page: Any) -> int:
    """``document.documentElement.scrollWidth``: wider than the viewport means sideways
    scrolling."""
    return int(page.evaluate("() => document.documentElement.scrollWidth"))


#: The places where a line of ``el``'s text breaks: "abc|def" around each break.
LINE_BREAKS_JS = """(el) => {
  const range = document.createRange();
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  const chars = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.length; i++) {
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const rect = range.getClientRects()[0];
      if (rect && rect.width > 0) chars.push([node.data[i], rect.top]);
    }
  }
  const out = [];
  for (let i = 1; i < chars.length; i++) {
    if (chars[i][1] > chars[i - 1][1] + 2) {
      const before = chars.slice(Math.max(0, i - 4), i).map((c) => c[0]).join('');
      const after = chars.slice(i, i + 4).map((c) => c[0]).join('');
      out.push(`${before}|${after}`);
    }
  }
  return out;
}"""


def bad_email_breaks(page: Any, selector: str) -> list[str]:
    """Line breaks inside an e-mail address that fall mid-word: a break is fine after ``.``,
    ``-``, ``_``, ``+`` or ``@``, or before ``@`` or ``.``."""
    breaks = page.locator(selector).first.evaluate(LINE_BREAKS_JS)
    return [
        b for b in breaks if not (b.split("|")[0][-1:] in ".-_+@" or b.split("|")[1][:1] in "@.")
    ]


def in_viewport(page: Any, selector: str) -> bool:
    """True when the element's top edge is on screen (it has been scrolled into view)."""
    return bool(
        page.locator(selector).first.evaluate(
            """(el) => {
                const r = el.getBoundingClientRect();
                return r.height > 0 && r.top >= 0 && r.top < window.innerHeight - 20;
            }"""
        )
    )


@dataclass
class Device:
    name: str
    width: int
    height: int
    phone: bool

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"viewport": {"width": self.width, "height": self.height}}
        if self.phone:
            opts |= {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}
        return opts


PHONE = Device("phone", 390, 844, True)
DESKTOP = Device("desktop", 1280, 800, False)


@dataclass
class Problems:
    """Failed checks, each tagged with the issue item it belongs to; asserted at the end so
    one run lists everything that is wrong."""

    device: Device
    shots: Path
    found: list[str] = field(default_factory=list)
    pages_checked: list[str] = field(default_factory=list)

    def check(self, ok: Any, item: str, message: str) -> bool:
        if not ok:
            self.found.append(f"[{self.device.name}] item {item}: {message}")
        return bool(ok)

    def page(self, page: Any, name: str) -> None:
        """Screenshot, axe-core (0 serious/critical), no sideways scrolling at this width and
        (phones) at 360 px."""
        page.screenshot(path=str(self.shots / f"ux-{self.device.name}-{name}.png"), full_page=True)
        self.pages_checked.append(name)
        for v in axe_violations(page):
            self.check(
                False, "3", f"{name}: axe {v['impact']} {v['id']} ({v['help']}): {v['nodes']}"
            )
        width = scroll_width(page)
        self.check(
            width <= self.device.width, "4", f"{name}: {width} px wide at {self.device.width}"
        )
        if self.device.phone:
            page.set_viewport_size({"width": NARROW, "height": self.device.height})
            width = scroll_width(page)
            self.check(width <= NARROW, "4", f"{name}: {width} px wide at {NARROW}")
            page.set_viewport_size({"width": self.device.width, "height": self.device.height})

    def assert_none(self) -> None:
        assert not self.found, "\n".join(self.found)
