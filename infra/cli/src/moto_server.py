"""Runs a moto server on 127.0.0.1 for rollcall's local stack and tests.

Prints the port it listens on, then serves until its standard input closes: the process that
started it holds the other end, so when that process ends, for any reason, moto ends too.

Two changes make moto behave like DynamoDB under rollcall's load (moto is pinned in
infra/requirements-dev.txt; the patch refuses to run on a moto it was not written for):

- Requests are handled one at a time. moto's DynamoDB is not safe under concurrent requests
  (condition checks and writes of two transactions can interleave), whereas DynamoDB
  serialises conflicting transactions. Connections are still accepted concurrently. An SQS
  long poll (ReceiveMessage with WaitTimeSeconds) holds the lock only while it asks: it asks
  without waiting, and between asks sleeps without the lock, until a message comes or its time
  is up, so a poller never stalls the other requests for the length of its wait.
- TransactWriteItems checks every condition first and writes only if all hold, as DynamoDB
  does. moto instead writes as it goes and, to undo a failed transaction, deep-copies the whole
  table before every item, which makes each transaction cost the size of the table.
- A Query reads only the partition it names, as DynamoDB does. moto walks every item of the
  table for each Query page, which makes a month-end snapshot of a million users take days.
  Each table keeps, per global secondary index hash attribute, a map from value to items,
  updated by every write (put, update, delete) once the first index Query has built it.

It also accepts injected faults, so tests can make a real AWS call fail the way AWS fails
(throttling, say) and exercise the caller's real error handling. `POST /rollcall/faults` with
`{"path": "/v2/email/outbound-emails", "body_contains": "someone@example.com", "status": 429,
"code": "TooManyRequestsException", "message": "...", "count": 3}` makes the next 3 requests to
that path whose body contains that text fail with that status and error code (in the JSON error
shape of AWS's REST-JSON services). A rule with `"target"` (e.g.
`"DynamoDB_20120810.TransactWriteItems"`) matches only requests with that `X-Amz-Target`.
`DELETE /rollcall/faults` clears them.
"""

import copy
import io
import json
import os
import sys
import threading
import time

from werkzeug.serving import make_server

import moto
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

PATCHED_FOR = "5.2.5"
if moto.__version__ != PATCHED_FOR:
    sys.exit(f"moto {moto.__version__} found, {PATCHED_FOR} expected (make installs it into .venv)")


def _key_of(backend, op_type, op):
    if op_type != "Put":
        return op["Key"]
    table = backend.get_table(op["TableName"])
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def transact_write_items(self, transact_items):
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen = set()
    reasons = []
    failed = False
    ops = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        key = _key_of(self, op_type, op)
        unique = (op["TableName"], str(dict(sorted(key.items()))))
        if unique in seen:
            raise MultipleTransactionsException()
        seen.add(unique)
        ops.append((op_type, op, key))
        condition = op.get("ConditionExpression")
        current = self.get_item(op["TableName"], key)
        if condition is not None and not get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        ).expr(current):
            old = None
            if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                old = current.to_json()["Attributes"]
            reasons.append(("ConditionalCheckFailed", "The conditional request failed", old))
            failed = True
        else:
            reasons.append((None, None, None))
    if failed:
        raise TransactionCanceledException(reasons)
    for op_type, op, key in ops:
        names = op.get("ExpressionAttributeNames")
        values = op.get("ExpressionAttributeValues")
        if op_type == "Put":
            self.put_item(op["TableName"], op["Item"])
        elif op_type == "Delete":
            self.delete_item(op["TableName"], key)
        elif op_type == "Update":
            self.update_item(
                op["TableName"],
                key,
                update_expression=op["UpdateExpression"],
                expression_attribute_names=names,
                expression_attribute_values=values,
                condition_expression=op.get("ConditionExpression"),
            )


DynamoDBBackend.transact_write_items = transact_write_items


def _index_hash_attrs(table):
    return {
        key["AttributeName"]
        for index in table.global_indexes
        for key in index.schema
        if key["KeyType"] == "HASH"
    }


def _partitions(table):
    """The table's map attribute -> value -> {(hash, range): item}, built on first use."""
    parts = table.__dict__.get("_rollcall_parts")
    if parts is None:
        parts = {attr: {} for attr in _index_hash_attrs(table)}
        table._rollcall_parts = parts
        table._rollcall_where = {}
        for item in Table.all_items(table):
            _place(table, (item.hash_key, item.range_key), item)
    return parts


def _place(table, key, item):
    """Moves the item stored under key (None once deleted) to the partitions it belongs to."""
    parts = table.__dict__.get("_rollcall_parts")
    if parts is None:
        return
    where = table._rollcall_where
    for attr, value in where.pop(key, {}).items():
        members = parts[attr].get(value)
        if members is not None:
            members.pop(key, None)
            if not members:
                del parts[attr][value]
    if item is None:
        return
    now = {}
    for attr in parts:
        value = item.attrs.get(attr)
        if value is not None:
            value = copy.deepcopy(value)  # an update may change the item's value in place
            parts[attr].setdefault(value, {})[key] = item
            now[attr] = value
    if now:
        where[key] = now


original_put = Table.put_item
original_delete = Table.delete_item
original_update = DynamoDBBackend.update_item
original_query = Table.query


def put_item(self, item_attrs, *args, **kwargs):
    item = original_put(self, item_attrs, *args, **kwargs)
    _place(self, (item.hash_key, item.range_key), item)
    return item


def delete_item(self, hash_key, range_key):
    item = original_delete(self, hash_key, range_key)
    if item is not None:
        _place(self, (item.hash_key, item.range_key), None)
    return item


def update_item(self, table_name, key, *args, **kwargs):
    item = original_update(self, table_name, key, *args, **kwargs)
    _place(self.get_table(table_name), (item.hash_key, item.range_key), item)
    return item


def query(
    self,
    hash_key,
    range_comparison,
    range_objs,
    limit,
    exclusive_start_key,
    scan_index_forward,
    projection_expressions,
    index_name=None,
    consistent_read=False,
    filter_expression=None,
    hash_key_conditions=None,
    range_key_conditions=None,
    **filter_kwargs,
):
    if index_name is not None and hash_key_conditions and len(hash_key_conditions) == 1:
        attr, value = hash_key_conditions[0]
        members = _partitions(self).get(attr)
        if members is not None:
            candidates = list(members.get(value, {}).values())
            self.all_items = lambda: candidates
    elif index_name is None and hash_key is not None and self.range_key_attr is not None:
        candidates = list(self.items[hash_key].values()) if hash_key in self.items else []
        self.all_items = lambda: candidates
    try:
        return original_query(
            self,
            hash_key,
            range_comparison,
            range_objs,
            limit,
            exclusive_start_key,
            scan_index_forward,
            projection_expressions,
            index_name,
            consistent_read,
            filter_expression,
            hash_key_conditions=hash_key_conditions,
            range_key_conditions=range_key_conditions,
            **filter_kwargs,
        )
    finally:
        self.__dict__.pop("all_items", None)


Table.put_item = put_item
Table.delete_item = delete_item
DynamoDBBackend.update_item = update_item
Table.query = query

port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
moto_app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()


faults = []


def fault_admin(environ, start_response):
    if environ["REQUEST_METHOD"] == "DELETE":
        faults.clear()
    else:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        rule = json.loads(environ["wsgi.input"].read(length) or b"{}")
        for name in ("path", "status", "code", "count"):
            if name not in rule:
                start_response("400 Bad Request", [("Content-Type", "text/plain")])
                return [f"fault rule needs {name}".encode()]
        faults.append(rule)
    start_response("204 No Content", [])
    return []


def injected(environ, start_response):
    """Answers with an injected fault if one matches this request, else returns None."""
    if not faults:
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    text = body.decode("utf-8", "replace")
    for rule in faults:
        target = rule.get("target")
        if (
            rule["count"] > 0
            and environ.get("PATH_INFO") == rule["path"]
            and (target is None or environ.get("HTTP_X_AMZ_TARGET") == target)
            and rule.get("body_contains", "") in text
        ):
            rule["count"] -= 1
            payload = json.dumps(
                {"__type": rule["code"], "message": rule.get("message", "injected fault")}
            ).encode()
            start_response(
                f"{rule['status']} Injected",
                [
                    ("Content-Type", "application/json"),
                    ("X-Amzn-ErrorType", rule["code"]),
                    ("Content-Length", str(len(payload))),
                ],
            )
            return [payload]
    return None


def long_poll(environ):
    """For an SQS ReceiveMessage that waits (WaitTimeSeconds > 0, JSON protocol): the request
    rewritten not to wait, and how long it may wait. Otherwise None."""
    if environ.get("HTTP_X_AMZ_TARGET") != "AmazonSQS.ReceiveMessage":
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return None
    wait = request.get("WaitTimeSeconds") or 0
    if wait <= 0:
        return None
    request["WaitTimeSeconds"] = 0
    return json.dumps(request).encode(), wait


def answered(environ, body):
    """Runs one request with `body` through moto (under the lock); returns status, headers and
    the response's bytes."""
    environ = dict(environ)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    seen = {}

    def capture(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    with lock:
        chunks = b"".join(moto_app(environ, capture))
    return seen["status"], seen["headers"], chunks


def serialised(environ, start_response):
    # A long poll must not hold the lock while it waits (every other request would wait
    # behind it): it asks without waiting, under the lock, until a message comes or its time is
    # up, and sleeps between asks without the lock.
    poll = long_poll(environ)
    if poll is not None:
        body, wait = poll
        deadline = time.monotonic() + wait
        while True:
            status, headers, chunks = answered(environ, body)
            try:
                got = bool(json.loads(chunks or b"{}").get("Messages"))
            except ValueError:
                got = True
            if got or not status.startswith("200") or time.monotonic() >= deadline:
                start_response(status, headers)
                return [chunks]
            time.sleep(0.05)
    with lock:
        if environ.get("PATH_INFO") == "/rollcall/faults":
            return fault_admin(environ, start_response)
        fault = injected(environ, start_response)
        if fault is not None:
            return fault
        return list(moto_app(environ, start_response))


server = make_server("127.0.0.1", port, serialised, threaded=True, request_handler=MotoRequestHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_port, flush=True)
sys.stdin.read()
server.shutdown()
# Exit without tearing down every object: after a large benchmark (a million items) the
# interpreter's clean-up alone takes minutes, with the port already closed.
os._exit(0)
