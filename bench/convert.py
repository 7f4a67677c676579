"""Benchmark: the information model's JSON path, compiled against the xmlschema/jsonschema reference.

For every valid example in schemas/ (all message types), measures the CPU time
per message of

- ``json_to_xml``: the JSON Schema check and the conversion to the payload element;
- ``xml_to_json``: the payload element to its JSON form (what delivery does);
- ``validate_json``: the complete JSON route (check, convert, XSD, identifiers,
  business rules);
- the JSON Schema check alone (fastjsonschema against jsonschema),

each with its baseline in the same run: the reference implementation the
compiled path replaced (``InfoModel.reference_*``: jsonschema's
Draft202012Validator and xmlschema's encoder and decoder; ``validate_json`` as it
was, with the JSON Schema validation run twice). Old and new calls are
interleaved per example and per round, so a busy machine slows both alike.
Every result of the compiled path is first checked equal to the reference's.

    python -m bench.convert [--rounds 5] [--repeat 10] [--per-type]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from lxml import etree

from hub.errors import ValidationFailed
from hub.infomodel import InfoModel, MessageType
from hub.infomodel_convert import compile_json_check
from hub.settings import ROOT


def _old_validate_json(model: InfoModel, mtype: MessageType, data: Any) -> etree._Element:
    """``validate_json`` before the compiled path: jsonschema, then jsonschema again inside the encode."""
    params = model.json_errors(mtype, data)
    if any(p.code != "identifier" for p in params):
        raise ValidationFailed("invalid", invalid_params=params)
    element = model.reference_json_to_xml(mtype, data)
    model.validate_payload(mtype, element, pointer="json")
    return element


def _cpu_ms(call: Callable[[], Any], repeat: int) -> float:
    start = time.process_time_ns()
    for _ in range(repeat):
        call()
    return (time.process_time_ns() - start) / repeat / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds over all examples")
    parser.add_argument("--repeat", type=int, default=5, help="calls per example per round and path")
    parser.add_argument("--per-type", action="store_true", help="also print json_to_xml per message type")
    args = parser.parse_args(argv)

    model = InfoModel(ROOT / "schemas")
    cases: list[tuple[MessageType, etree._Element, Any]] = []
    names: list[str] = []
    for example in model.examples():
        if example.valid:
            element = etree.parse(str(example.path)).getroot()
            cases.append((example.mtype, element, model.reference_xml_to_json(example.mtype, element)))
            names.append(f"{example.mtype.name} {example.mtype.version} {example.name}")
    fallbacks = {k: v for k, v in model.conversion_report().items() if v != "compiled"}

    # the compiled path must give what the reference gives before its time means anything
    for mtype, element, data in cases:
        c14n = etree.tostring(model.json_to_xml(mtype, data), method="c14n2")
        if c14n != etree.tostring(model.reference_json_to_xml(mtype, data), method="c14n2"):
            raise SystemExit(f"{mtype.name} {mtype.version}: json_to_xml differs from the reference")
        if model.xml_to_json(mtype, element) != data:
            raise SystemExit(f"{mtype.name} {mtype.version}: xml_to_json differs from the reference")
        model.validate_json(mtype, data)
        _old_validate_json(model, mtype, data)

    checks = {(t.name, t.version): compile_json_check(model.json_schema(t)) for t in model.types()}
    operations: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "json_to_xml": (
            lambda t, e, d: model.reference_json_to_xml(t, d),
            lambda t, e, d: model.json_to_xml(t, d),
        ),
        "xml_to_json": (
            lambda t, e, d: model.reference_xml_to_json(t, e),
            lambda t, e, d: model.xml_to_json(t, e),
        ),
        "validate_json": (
            lambda t, e, d: _old_validate_json(model, t, d),
            lambda t, e, d: model.validate_json(t, d),
        ),
        "JSON Schema check": (
            lambda t, e, d: model.json_errors(t, d),
            lambda t, e, d: checks[(t.name, t.version)](d),
        ),
    }
    # samples[operation][case index] -> (old ms, new ms) per round
    samples: dict[str, list[list[tuple[float, float]]]] = {op: [[] for _ in cases] for op in operations}
    started = time.perf_counter()
    for _ in range(args.rounds):
        for op, (old, new) in operations.items():
            for index, (mtype, element, data) in enumerate(cases):
                o = _cpu_ms(lambda old=old, t=mtype, e=element, d=data: old(t, e, d), args.repeat)
                n = _cpu_ms(lambda new=new, t=mtype, e=element, d=data: new(t, e, d), args.repeat)
                samples[op][index].append((o, n))
    elapsed = time.perf_counter() - started

    print(
        f"bench.convert: {len(cases)} valid examples of {len({(t.name, t.version) for t, _, _ in cases})} "
        f"message types, {args.rounds} rounds x {args.repeat} calls, CPU time per message "
        f"(median over rounds, mean over examples), {elapsed:.1f} s"
    )
    print(f"types converted by xmlschema (not compiled): {', '.join(map(str, fallbacks)) or 'none'}")
    print()
    print(f"{'operation':<20} {'reference ms':>13} {'compiled ms':>12} {'speed-up':>9}")
    for op in operations:
        old_ms = statistics.fmean(statistics.median(o for o, _ in rounds) for rounds in samples[op])
        new_ms = statistics.fmean(statistics.median(n for _, n in rounds) for rounds in samples[op])
        print(f"{op:<20} {old_ms:>13.3f} {new_ms:>12.3f} {old_ms / new_ms:>8.1f}x")

    if args.per_type:
        print()
        print(f"{'json_to_xml per example':<58} {'reference ms':>13} {'compiled ms':>12}")
        for name, rounds in zip(names, samples["json_to_xml"], strict=True):
            old_ms = statistics.median(o for o, _ in rounds)
            new_ms = statistics.median(n for _, n in rounds)
            print(f"{name:<58} {old_ms:>13.3f} {new_ms:>12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
