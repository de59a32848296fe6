"""`dunning replies ...`: Customer replies: classify, match and act.

Heavy libraries are imported inside the commands so that `dunning plan` stays fast.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Annotated, Any, TextIO

import typer

from dunning.policy import today as policy_today

app = typer.Typer(help="Customer replies: classify, match and act.", no_args_is_help=True)

_LANGS = ("es", "en", "pt")


def _parse_day(value: str | None) -> date:
    if not value:
        return policy_today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


def _read_line(number: int, line: str) -> tuple[dict[str, Any], str | None]:
    """The record on one input line and its problem (None when it can be classified)."""
    if not line.strip():
        return {}, f"line {number}: empty line; expected a JSON object with a 'text' field"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return {}, f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(record, dict):
        return {}, f"line {number}: expected a JSON object, got {type(record).__name__}"
    text = record.get("text")
    if not isinstance(text, str):
        problem = "is missing" if text is None else f"must be a string, not {type(text).__name__}"
        return record, f"line {number}: field 'text' {problem}"
    received = record.get("received_on")
    if received not in (None, ""):
        try:
            date.fromisoformat(str(received))
        except ValueError:
            return record, f"line {number}: field 'received_on' is {received!r}; use YYYY-MM-DD"
    lang = record.get("lang")
    if lang not in (None, "") and lang not in _LANGS:
        return record, f"line {number}: field 'lang' is {lang!r}; use es, en or pt (or omit it)"
    return record, None


def classify_stream(
    source: TextIO, sink: TextIO, *, today: date, llm: Any = None
) -> tuple[int, int]:
    """Classify the JSONL records of `source` into `sink`, in order; (classified, errors).

    Each output line is the input record plus `intent`, `confidence`, `lang`,
    `promise_date` (ISO date or null), `angry` and `new_contact`. A line that cannot be read
    becomes `{"line": n, "error": "..."}` (with the record's `id` if it had one) and the
    rest go on.
    """
    from dunning.replies import classify_many

    records: list[tuple[dict[str, Any], str | None]] = [
        _read_line(n, line) for n, line in enumerate(source, start=1)
    ]
    good = [
        (r["text"], date.fromisoformat(r["received_on"]) if r.get("received_on") else today,
         r.get("lang") or None)
        for r, problem in records if problem is None
    ]  # fmt: skip
    results = iter(classify_many(good))
    items = iter(good)
    errors = 0
    for n, (record, problem) in enumerate(records, start=1):
        if problem is not None:
            errors += 1
            out = {"line": n, "error": problem}
            if isinstance(record, dict) and "id" in record:
                out = {"id": record["id"], **out}
        else:
            result = next(results)
            text, received_on, lang = next(items)
            if llm is not None:
                from dunning.replies.llm import classify_with_fallback

                result = classify_with_fallback(text, received_on, lang, llm, offline=result)
            out = {
                **record,
                "intent": result.intent,
                "confidence": result.confidence,
                "lang": result.lang,
                "promise_date": result.promise_date.isoformat() if result.promise_date else None,
                "angry": result.angry,
                "new_contact": result.new_contact,
            }
        sink.write(json.dumps(out, ensure_ascii=False) + "\n")
    return len(records) - errors, errors


@app.command("classify")
def classify_command(
    today: Annotated[
        str | None,
        typer.Option(help="Received date for lines without 'received_on' (YYYY-MM-DD)."),
    ] = None,
    llm: Annotated[
        str | None,
        typer.Option(help="Name of a saved ReplyLLM block: ask it when the rules are unsure."),
    ] = None,
) -> None:
    """Classify customer replies: JSONL on stdin, JSONL on stdout, in the same order.

    Each input line has `text` and optionally `received_on` and `lang`; each output line
    adds `intent`, `confidence`, `lang`, `promise_date` (ISO date or null), `angry` and
    `new_contact`. A bad line gives an output line with an `error` naming the line and the
    problem; the others are still classified. Runs offline unless `--llm` is given.

        dunning replies classify --today 2026-12-09 < replies.jsonl > classified.jsonl
    """
    day = _parse_day(today)
    block = None
    if llm:
        from blocks import ReplyLLM, resolve_block

        block = resolve_block(llm, ReplyLLM)
    settings = block.settings() if block is not None else None
    classified, errors = classify_stream(sys.stdin, sys.stdout, today=day, llm=settings)
    typer.echo(f"classified {classified} replies, {errors} lines with errors", err=True)
