"""The gateway's offline API docs page (``/api/docs``).

Assembles DOCS_ROOT with Swagger UI 5 (the assets shipped by the ``fastapi-offline`` wheel; FastAPI
emits OpenAPI 3.1, which Swagger UI 4 cannot render) and ``index.html`` (from the template
``docs_index.html``, with ``index.js`` and ``index.css``) that shows each service's ``/api/docs/openapi/<name>.json`` with a service
selector. No network access is needed by the page.

API::

    build_docs(dest: Path, services=SERVICES) -> Path   # writes index.html + assets, returns dest

CLI (e.g. for a gateway image): ``python -m devstack.docs <dest>``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from .services import SERVICES, ServiceSpec

ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")
# The page's own script and style, as files: its Content-Security-Policy (Caddyfile) allows no inline script.
OWN_ASSETS = {"index.js": "docs_index.js", "index.css": "docs_index.css"}
_PLACEHOLDER = "/*SERVICES_JSON*/[]"


def swagger_static_dir() -> Path:
    # Found, not imported: importing fastapi_offline imports FastAPI, a second of CPU that blocked the
    # supervisor's loop (its schema checks and service starts) while the services import.
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("fastapi_offline (Swagger UI 5 assets) is not installed")
    return Path(spec.origin).parent / "static"


def render_index(services: Iterable[ServiceSpec] = SERVICES) -> str:
    template = resources.files("devstack").joinpath("docs_index.html").read_text("utf-8")
    entries = [{"name": s.name, "url": f"/api/docs/openapi/{s.name}.json"} for s in services]
    assert _PLACEHOLDER in template
    return template.replace(_PLACEHOLDER, json.dumps(entries).replace("</", "<\\/"))


def build_docs(dest: Path, services: Iterable[ServiceSpec] = SERVICES) -> Path:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    static = swagger_static_dir()
    for name in ASSETS:
        src = static / name
        target = dest / name
        if not target.exists() or target.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, target)
    for name, source in OWN_ASSETS.items():
        (dest / name).write_text(resources.files("devstack").joinpath(source).read_text("utf-8"), "utf-8")
    tmp = dest / "index.html.tmp"
    tmp.write_text(render_index(services), "utf-8")
    tmp.replace(dest / "index.html")
    return dest


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 2:
        sys.exit("usage: python -m devstack.docs <dest-dir>")
    print(build_docs(Path(sys.argv[1])))
