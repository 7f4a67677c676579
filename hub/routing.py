"""Routing rules: from message type (+ sender, + a payload field) to receivers.

``config/routing.yaml``::

    rules:
      - type: inburgeringsplicht         # required
        sender: duo                      # optional
        when: {field: gemeentecode, in: ["0344"]}   # optional payload condition
        to: [gemeente-utrecht]           # fixed receivers, and/or
        toByField: gemeentecode          # the partner whose codes hold this field's value
      - type: persoonsmutatie
        toFollowers: true                # person-bound: whoever follows the subject in the
                                         # reference directory (hub/directory.py)

    lookups:                             # synchronous questions: kind -> partner that answers
      persoon: magda

Every rule that matches adds its receivers; explicit receivers in the
envelope take precedence over the rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

from hub.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class Rule:
    """One routing rule."""

    type: str
    sender: str | None = None
    when_field: str | None = None
    when_in: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    to_by_field: str | None = None
    to_followers: bool = False


def field_value(payload: etree._Element, path: str) -> str | None:
    """The text of a payload field given as a slash path of local names."""
    node: etree._Element | None = payload
    for step in path.split("/"):
        if node is None:
            return None
        parent, node = node, None
        for child in parent:
            tag = child.tag
            # the local name is what follows the namespace in the tag (what QName(c).localname gives)
            if isinstance(tag, str) and tag.rpartition("}")[2] == step:
                node = child
                break
    return (node.text or "").strip() if node is not None else None


class Router:
    """Applies the rules; ``code_owner`` maps a code (e.g. gemeentecode) to a partner id."""

    def __init__(self, rules: Iterable[Rule], lookups: dict[str, str] | None = None) -> None:
        self.rules = tuple(rules)
        self.lookups = dict(lookups or {})
        # the rules of each message type, in file order: a message looks at its own type's only
        by_type: dict[str, list[Rule]] = {}
        for rule in self.rules:
            by_type.setdefault(rule.type, []).append(rule)
        self._by_type = {name: tuple(rules) for name, rules in by_type.items()}

    @classmethod
    def load(cls, path: Path) -> Router:
        if not path.is_file():
            return cls([])
        spec: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        rules = []
        for i, r in enumerate(spec.get("rules") or []):
            if "type" not in r or not (r.get("to") or r.get("toByField") or r.get("toFollowers")):
                raise ConfigurationError(f"{path}: rule {i} needs 'type' and 'to', 'toByField' or 'toFollowers'")
            when = r.get("when") or {}
            rules.append(
                Rule(
                    type=r["type"],
                    sender=r.get("sender"),
                    when_field=when.get("field"),
                    when_in=tuple(str(v) for v in when.get("in", ())),
                    to=tuple(r.get("to") or ()),
                    to_by_field=r.get("toByField"),
                    to_followers=bool(r.get("toFollowers", False)),
                )
            )
        lookups = {str(k): str(v) for k, v in (spec.get("lookups") or {}).items()}
        return cls(rules, lookups)

    def _matching(self, message_type: str, sender: str, payload: etree._Element) -> Iterable[Rule]:
        for rule in self._by_type.get(message_type, ()):
            if rule.sender and rule.sender != sender:
                continue
            if rule.when_field and field_value(payload, rule.when_field) not in rule.when_in:
                continue
            yield rule

    def resolve(
        self,
        message_type: str,
        sender: str,
        payload: etree._Element,
        code_owner: Callable[[str], str | None],
    ) -> tuple[tuple[str, ...], bool]:
        """The receivers for this message (in rule order, without duplicates and without the
        sender), and whether a matching rule sends it to the person's followers (the reference
        directory then decides who else), from one pass over the rules."""
        out: list[str] = []
        followers = False
        for rule in self._matching(message_type, sender, payload):
            followers = followers or rule.to_followers
            out.extend(rule.to)
            if rule.to_by_field:
                value = field_value(payload, rule.to_by_field)
                owner = code_owner(value) if value else None
                if owner:
                    out.append(owner)
        return tuple(dict.fromkeys(r for r in out if r != sender)), followers
