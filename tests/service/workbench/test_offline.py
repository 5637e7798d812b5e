"""No page references another host, and no page a crawl reaches fails with a server error.

A regulated deployment is often air-gapped: a page that loads a script, a stylesheet or an image
from a CDN is blank or broken there. The crawl signs in as each role (a development login) and
follows every same-site link from the home page; every page it reaches, /docs, /login and every
template file must name only this server (or loopback) in ``src``, ``href`` and ``action``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from engine.backends.fake import Scripted
from engine.categories import Category
from service.access.principal import Role
from service.workbench.render import STATIC, TEMPLATES
from tests.service.conftest import Served

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
URL_ATTRIBUTES = {"src", "href", "action", "srcset", "poster", "data", "formaction"}
OUTSIDE = re.compile(
    r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//(?!127\.0\.0\.1|localhost)"""
)
MAX_PAGES = 200


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value:
                self.urls.extend(v.strip().split(" ")[0] for v in value.split(","))


def outside_references(html: str, base: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    out = []
    for url in parser.urls:
        absolute = urlsplit(urljoin(base, url))
        if absolute.scheme in {"http", "https"} and absolute.hostname not in LOOPBACK:
            out.append(url)
    return out


def links(html: str, base: str) -> list[str]:
    """Same-site GET links (``a href``) of a page, without fragments."""
    parser = _Links()
    parser.feed(html)
    found = []
    for url in parser.urls:
        absolute = urlsplit(urljoin(base, url))
        if absolute.scheme in {"http", "https"} and absolute.hostname in LOOPBACK:
            found.append(absolute.path + (f"?{absolute.query}" if absolute.query else ""))
    return found


def test_the_checker_finds_an_outside_host() -> None:
    page = '<script src="https://cdn.example.org/x.js"></script><a href="/ok">ok</a>'
    assert outside_references(page, "http://127.0.0.1:8000/") == ["https://cdn.example.org/x.js"]
    assert outside_references('<img src="//cdn.example.org/i.png">', "http://127.0.0.1/") != []
    assert OUTSIDE.search('<link href="https://fonts.example.com/a.css">')


def _seed(served: Served) -> None:
    """A case in each queue, so the crawl reaches queue and case pages with content."""
    served.backend.enqueue(Scripted.label(Category.SAFETY_COMPLIANCE, 0.9))
    served.backend.enqueue(
        Scripted(
            {
                Category.INFORMATIONAL: 0.35,
                Category.SERVICE_ACTION: 0.5,
                Category.SAFETY_COMPLIANCE: 0.15,
            }
        )
    )
    for message in ("I had a bad reaction to the tablets", "my order is odd"):
        r = served.client.post("/classify", json={"message": message})
        assert r.status_code == 200, r.text


def _login(client: httpx.Client, role: Role) -> None:
    client.cookies.clear()
    client.get("/login")
    r = client.post(
        "/login",
        data={"csrf": client.cookies["sb_csrf"], "role": role.value},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_crawl_every_page_as_each_role(served: Served, role: Role) -> None:
    _seed(served)
    client = served.client
    _login(client, role)
    seen: set[str] = set()
    todo = ["/", "/docs", "/login"]
    problems: list[str] = []
    while todo and len(seen) < MAX_PAGES:
        path = todo.pop()
        if path in seen or path.startswith("/static/"):
            continue
        seen.add(path)
        r = client.get(path, headers={"accept": "text/html"}, follow_redirects=True)
        if r.status_code >= 500:
            problems.append(f"{path}: HTTP {r.status_code}")
        if "html" in r.headers.get("content-type", ""):
            problems.extend(f"{path}: {u}" for u in outside_references(r.text, served.url + path))
            todo.extend(links(r.text, served.url + path))
    assert len(seen) >= 3
    assert problems == []


def test_templates_and_styles_name_no_outside_host() -> None:
    files = [*TEMPLATES.glob("*.html"), *STATIC.glob("*.css")]
    assert files
    found = [
        f"{path.name}: {m.group(0)}"
        for path in files
        for m in OUTSIDE.finditer(path.read_text(encoding="utf-8"))
    ]
    css_urls = [
        f"{path.name}: {m.group(0)}"
        for path in STATIC.glob("*.css")
        for m in re.finditer(r"url\(\s*['\"]?(?:https?:)?//", path.read_text(encoding="utf-8"))
    ]
    assert found + css_urls == []


def test_vendored_files_are_listed_with_their_licence() -> None:
    readme = (STATIC / "README.md").read_text(encoding="utf-8")
    for path in STATIC.rglob("*"):
        if path.suffix in {".js", ".css"} and path.name != "workbench.css":
            assert f"`{path.relative_to(STATIC)}`" in readme, path
    assert Path(STATIC / "htmx" / "LICENSE").is_file()
