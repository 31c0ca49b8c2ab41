"""Teaches schemathesis the few rules of rollcall's API that JSON Schema can't state, each of
which the OpenAPI document describes in words. Only requests schemathesis means to be valid
are touched, and only where such a rule would refuse them:

- `login_hours` starts and ends at different times (`Mon 08:00-08:00` is empty).
- `valid_till` must be after `valid_from` (two members compared, the stored one when a PATCH
  gives only one): a window that ends before it starts loses its end, and a PATCH that gives one
  end opens the other.
- app roles must be in the tenant's role catalogue (the tenant's data, not the document's):
  the local stack's tenant has an empty catalogue, so valid requests carry none.
- `from` must not be after `to` on /billing/snapshots, at most 120 months apart, and `to`
  defaults to the last month closed in Tokyo.
- a `cursor` is one the server handed out for the same query: valid requests start at the first
  page.
- an `Idempotency-Key` used before with another body is refused (422): each valid request gets a
  key of its own.

And one thing schemathesis gets wrong: its coverage phase sends `If-Match: 0` as a valid value
although the documented pattern refuses it (its fuzzing phase honours the pattern). A valid
request whose If-Match doesn't match the document's pattern is sent without it.
"""

import itertools
import re
from datetime import datetime, timedelta, timezone

import schemathesis
from schemathesis import GenerationMode


_keys = itertools.count()


def _positive(case):
    meta = getattr(case, "_meta", None)
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


def _month(text):
    year, month = text.split("-")
    return int(year) * 12 + int(month) - 1


def _text(index):
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _last_closed_month_in_tokyo():
    now = datetime.now(timezone.utc) + timedelta(hours=9)
    return _month(f"{now.year:04d}-{now.month:02d}") - 1


def _instant(text):
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        return None


@schemathesis.hook
def before_call(context, case, kwargs):
    if not _positive(case):
        return
    path = case.operation.path
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = f"fuzz-{next(_keys)}"
    body = case.body if isinstance(case.body, dict) else None
    if body is not None:
        start, end = _instant(body.get("valid_from")), _instant(body.get("valid_till"))
        if start is not None and end is not None and end <= start:
            del body["valid_till"]
        if body.get("app_roles"):
            body["app_roles"] = []
        hours = body.get("login_hours")
        if isinstance(hours, str) and " " in hours:
            days, times = hours.split(" ", 1)
            start, end = times.split("-", 1)
            if start == end:
                body["login_hours"] = f"{days} {start}-24:00"
        if case.operation.method.lower() == "patch":
            for one, other in (("valid_from", "valid_till"), ("valid_till", "valid_from")):
                if body.get(one) and other not in body:
                    body[other] = None
    if case.headers and "If-Match" in case.headers:
        pattern = case.operation.schema.raw_schema["components"]["parameters"]["IfMatch"]
        if not re.fullmatch(pattern["schema"]["pattern"], str(case.headers["If-Match"])):
            del case.headers["If-Match"]
    query = case.query if isinstance(case.query, dict) else None
    if query is not None and path == "/users":
        query.pop("cursor", None)
    if query is not None and path == "/billing/snapshots" and "from" in query:
        first = _month(query["from"])
        last = _month(query["to"]) if "to" in query else _last_closed_month_in_tokyo()
        if first > last:
            first, last = last, first
        first = max(first, last - 119)
        query["from"], query["to"] = _text(first), _text(last)
