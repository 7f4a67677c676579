"""The published contracts, committed under docs/ so their changes show in review.

``python -m hub.api.contracts write`` regenerates them; ``check`` (run by the
test suite) fails when the code and the committed copies drift apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hub.settings import ROOT, Settings

OPENAPI = ROOT / "docs" / "openapi.json"
WSDL = ROOT / "docs" / "knooppunt.wsdl"
PUBLIC_URL = "http://127.0.0.1:8000"


def render() -> dict[Path, str]:
    """The OpenAPI document and the WSDL as the code produces them, for the default public URL."""
    import tempfile

    from hub.api.app import create_app
    from hub.api.soap import wsdl

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(public_url=PUBLIC_URL, database_url=f"sqlite:///{Path(tmp) / 'c.db'}", log_level="error")
        app = create_app(settings)
        openapi = json.dumps(app.openapi(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        app.state.hub.engine.dispose()
        app.state.hub.writer.engine.dispose()
    return {OPENAPI: openapi, WSDL: wsdl(PUBLIC_URL, settings.schemas_dir).decode()}


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    drifted = []
    for path, text in render().items():
        if command == "write":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        elif not path.is_file() or path.read_text(encoding="utf-8") != text:
            drifted.append(path.relative_to(ROOT))
    if drifted:
        print(f"drifted from the code: {', '.join(map(str, drifted))}; run `make openapi`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
