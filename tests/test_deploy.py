"""deploy/compose.yaml stays in step with the code: its commands exist, its settings are real."""

from __future__ import annotations

import yaml
from typer.main import get_command

from hub.cli.main import app
from hub.settings import ROOT, Settings

COMPOSE = ROOT / "deploy" / "compose.yaml"


def test_compose_starts_commands_the_cli_has() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    for name in ("api", "worker"):
        command = services[name]["command"]
        assert command[0] == "knooppunt"
        assert command[1] in commands


def test_compose_sets_only_settings_that_exist() -> None:
    environment = yaml.safe_load(COMPOSE.read_text())["x-knooppunt"]["environment"]
    fields = Settings.model_fields
    for key in environment:
        assert key.startswith("KNOOPPUNT_")
        top, _, nested = key.removeprefix("KNOOPPUNT_").lower().partition("__")
        assert top in fields, key
        if nested:
            sub = fields[top].annotation
            assert nested in sub.model_fields, key  # type: ignore[union-attr]
