"""Labels that arrive after the answer: request ids that remember who answered, and feedback against them.

Every answered prediction carries a request id that names the model, the version and the slice that answered
and the label the answer decided. The true label (or the outcome: right or wrong) may arrive seconds or days
later, at any replica of any version of the model (the mesh routes it like any request): that replica counts
it for the version and slice in the id, so accuracy is joined to whoever served the request without shared
state, even after that version is gone. The id is a label carrier, not a secret or a signature.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from modelrollout.serving.predictions import NotAPrediction, normalise_label

TOKEN_PREFIX = "mr1."
MAX_REQUEST_ID = 128
"""Longest client request id (x-request-id) kept inside a modelrollout request id."""
MAX_ITEMS = 1000
"""Feedback items accepted in one POST."""
_VERSION = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class FeedbackError(ValueError):
    """One feedback item that cannot be counted; the message says why."""


@dataclass(frozen=True)
class Answered:
    """Who answered a request, and the label the answer decided (None for a null prediction)."""

    model: str
    version: str
    slice: str
    label: str | None
    client_id: str


def request_id(answered: Answered) -> str:
    """The id returned with an answer: every field needed to count its feedback later, anywhere."""
    body = {"m": answered.model, "v": answered.version, "s": answered.slice, "l": answered.label}
    body["r"] = answered.client_id
    encoded = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).rstrip(b"=")
    return TOKEN_PREFIX + encoded.decode()


def client_request_id(header: str | None) -> str:
    """The caller's own x-request-id when usable, else a fresh random one."""
    if header and len(header) <= MAX_REQUEST_ID and header.isprintable():
        return header
    return secrets.token_hex(8)


def parse_request_id(text: Any) -> Answered:
    """Reads a request id made by `request_id`; FeedbackError names what is wrong with it."""
    if not isinstance(text, str) or not text.startswith(TOKEN_PREFIX):
        raise FeedbackError(
            f"request_id must be a string starting with {TOKEN_PREFIX!r}, as answers carry it"
        )
    payload = text[len(TOKEN_PREFIX) :]
    try:
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise FeedbackError("request_id is not one this library issued (cannot decode it)") from None
    if not isinstance(body, dict):
        raise FeedbackError("request_id is not one this library issued (not an object inside)")
    model, version, slice_name = body.get("m"), body.get("v"), body.get("s")
    if not all(isinstance(v, str) and v for v in (model, version, slice_name)):
        raise FeedbackError("request_id lacks the model, version or slice that answered")
    label = body.get("l")
    return Answered(
        model=str(model),
        version=str(version),
        slice=str(slice_name),
        label=label if isinstance(label, str) else None,
        client_id=str(body.get("r") or ""),
    )


@dataclass(frozen=True)
class Judged:
    """One counted label: the version and slice that answered, and whether the answer was right."""

    version: str
    slice: str
    correct: bool


def judge_item(item: Any, model: str, slices: Iterable[str]) -> Judged:
    """One feedback item {"request_id", "label"} or {"request_id", "correct"} -> what to count."""
    if not isinstance(item, dict):
        raise FeedbackError('each feedback item is an object: {"request_id": ..., "label": ...}')
    answered = parse_request_id(item.get("request_id"))
    if answered.model != model:
        raise FeedbackError(f"request_id was answered by model {answered.model!r}, not {model!r}")
    if len(answered.version) > 40 or not _VERSION.match(answered.version):
        raise FeedbackError(f"request_id names an invalid version {answered.version!r}")
    if answered.slice not in set(slices):
        raise FeedbackError(f"request_id names slice {answered.slice!r}, which this server does not know")
    has_label, has_outcome = "label" in item, "correct" in item
    if has_label == has_outcome:
        raise FeedbackError('give exactly one of "label" (the true label) or "correct" (true or false)')
    if has_outcome:
        if not isinstance(item["correct"], bool):
            raise FeedbackError('"correct" must be true or false')
        return Judged(answered.version, answered.slice, item["correct"])
    try:
        truth = normalise_label(item["label"])
    except NotAPrediction as error:
        raise FeedbackError(f'"label": {error}') from None
    if truth is None:
        raise FeedbackError('"label" is empty')
    # A null prediction decided nothing, so it is never right.
    return Judged(answered.version, answered.slice, answered.label is not None and answered.label == truth)


def items_of(body: Any) -> list[Any]:
    """A feedback body is one item or a list of them."""
    items = body if isinstance(body, list) else [body]
    if len(items) > MAX_ITEMS:
        raise FeedbackError(f"at most {MAX_ITEMS} feedback items per request, got {len(items)}")
    return items
