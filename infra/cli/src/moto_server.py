"""Runs a moto server on 127.0.0.1 for rollcall's local stack and tests.

Prints the port it listens on, then serves until its standard input closes: the process that
started it holds the other end, so when that process ends, for any reason, moto ends too.

Two changes make moto behave like DynamoDB under rollcall's load (moto is pinned in
infra/requirements-dev.txt; the patch refuses to run on a moto it was not written for):

- Requests are handled one at a time. moto's DynamoDB is not safe under concurrent requests
  (condition checks and writes of two transactions can interleave), whereas DynamoDB
  serialises conflicting transactions. Connections are still accepted concurrently.
- TransactWriteItems checks every condition first and writes only if all hold, as DynamoDB
  does. moto instead writes as it goes and, to undo a failed transaction, deep-copies the whole
  table before every item, which makes each transaction cost the size of the table.

It also accepts injected faults, so tests can make a real AWS call fail the way AWS fails
(throttling, say) and exercise the caller's real error handling. `POST /rollcall/faults` with
`{"path": "/v2/email/outbound-emails", "body_contains": "someone@example.com", "status": 429,
"code": "TooManyRequestsException", "message": "...", "count": 3}` makes the next 3 requests to
that path whose body contains that text fail with that status and error code (in the JSON error
shape of AWS's REST-JSON services). `DELETE /rollcall/faults` clears them.
"""

import io
import json

import sys
import threading

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
        if rule["count"] > 0 and environ.get("PATH_INFO") == rule["path"] and rule.get(
            "body_contains", ""
        ) in text:
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


def serialised(environ, start_response):
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
