"""SQS's query protocol on rapid's port: form-encoded ``Action=<Op>&Version=2012-11-05&...``
POSTs (or GETs with the same query) answered in XML, as botocore before 1.31, the AWS CLI v1
of that time and many older SDKs speak it.

Theory of operation
-------------------
The query protocol carries the same operations as the JSON protocol, only dressed
differently, so this edge is a translation on both sides of ``SqsAPI`` and nothing else:

1. ``to_json`` turns the flat parameters into the JSON request. Lists and maps are
   *flattened* in the query protocol: ``AttributeName.1=All``, ``Attribute.1.Name=...`` with
   ``Attribute.1.Value=...``, ``MessageAttribute.1.Value.StringValue=...``,
   ``SendMessageBatchRequestEntry.2.MessageBody=...``; ``_MEMBERS`` says, per JSON member,
   its query name and its shape. A request sent to a queue's URL (``POST /ACCOUNT/NAME``)
   without a ``QueueUrl`` parameter names that queue.
2. The JSON request runs through ``SqsAPI`` as if it had come with ``X-Amz-Target``: the same
   checks, the same commit before the answer.
3. ``to_xml`` dresses the JSON answer as ``<OpResponse><OpResult>...</OpResult>
   <ResponseMetadata><RequestId/></ResponseMetadata></OpResponse>`` in SQS's namespace, with
   the same flattening in reverse; an error becomes SQS's ``<ErrorResponse><Error><Type/>
   <Code/><Message/><Detail/></Error><RequestId/></ErrorResponse>`` with the status the JSON
   protocol gives, its ``Code`` the query code (``AWS.SimpleQueueService.NonExistentQueue``).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from rapid.http.message import Request, Response
from rapid.queues import sqs_errors as err
from rapid.queues.sqs_api import SqsAPI


def escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as XML entities: ``xml.sax.saxutils.escape``, whose module would
    import ``urllib.request`` (and ``http.client``, ``email``) on every daemon's start."""
    return text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


NAMESPACE = "http://queue.amazonaws.com/doc/2012-11-05/"
CONTENT_TYPE = "text/xml"
VERSION = "2012-11-05"

# A shape: "s" text, "i" integer, "b" boolean, ("list", member query name, member shape),
# ("map", query name, key name, value name, value shape), or a dict of members (a structure:
# JSON name -> (query name, shape)).
_VALUE: dict[str, Any] = {
    "StringValue": ("StringValue", "s"), "BinaryValue": ("BinaryValue", "s"), "DataType": ("DataType", "s"),
    "StringListValues": ("StringListValue", ("list", "StringListValue", "s")),
    "BinaryListValues": ("BinaryListValue", ("list", "BinaryListValue", "s")),
}
_MESSAGE_ATTRIBUTES = ("MessageAttribute", ("map", "MessageAttribute", "Name", "Value", _VALUE))
_SYSTEM_ATTRIBUTES = ("MessageSystemAttribute", ("map", "MessageSystemAttribute", "Name", "Value", _VALUE))
_ATTRIBUTES = ("Attribute", ("map", "Attribute", "Name", "Value", "s"))
_SEND_ENTRY = {"Id": ("Id", "s"), "MessageBody": ("MessageBody", "s"), "DelaySeconds": ("DelaySeconds", "i"),
               "MessageAttributes": _MESSAGE_ATTRIBUTES, "MessageSystemAttributes": _SYSTEM_ATTRIBUTES,
               "MessageDeduplicationId": ("MessageDeduplicationId", "s"), "MessageGroupId": ("MessageGroupId", "s")}
_BATCH_ERROR = {"Id": ("Id", "s"), "SenderFault": ("SenderFault", "b"), "Code": ("Code", "s"),
                "Message": ("Message", "s")}

# Requests: per operation, its members beyond plain text ones (which pass as they are).
_REQUESTS: dict[str, dict[str, Any]] = {
    "CreateQueue": {"Attributes": _ATTRIBUTES, "tags": ("Tag", ("map", "Tag", "Key", "Value", "s"))},
    "SetQueueAttributes": {"Attributes": _ATTRIBUTES},
    "GetQueueAttributes": {"AttributeNames": ("AttributeName", ("list", "AttributeName", "s"))},
    "ListQueues": {"MaxResults": ("MaxResults", "i")},
    "ListDeadLetterSourceQueues": {"MaxResults": ("MaxResults", "i")},
    "SendMessage": {k: v for k, v in _SEND_ENTRY.items() if k != "Id"},
    "SendMessageBatch": {"Entries": ("SendMessageBatchRequestEntry",
                                     ("list", "SendMessageBatchRequestEntry", _SEND_ENTRY))},
    "ReceiveMessage": {"AttributeNames": ("AttributeName", ("list", "AttributeName", "s")),
                       "MessageSystemAttributeNames": ("MessageSystemAttributeName",
                                                       ("list", "MessageSystemAttributeName", "s")),
                       "MessageAttributeNames": ("MessageAttributeName", ("list", "MessageAttributeName", "s")),
                       "MaxNumberOfMessages": ("MaxNumberOfMessages", "i"),
                       "VisibilityTimeout": ("VisibilityTimeout", "i"), "WaitTimeSeconds": ("WaitTimeSeconds", "i")},
    "DeleteMessageBatch": {"Entries": ("DeleteMessageBatchRequestEntry", ("list", "DeleteMessageBatchRequestEntry", {
        "Id": ("Id", "s"), "ReceiptHandle": ("ReceiptHandle", "s")}))},
    "ChangeMessageVisibility": {"VisibilityTimeout": ("VisibilityTimeout", "i")},
    "ChangeMessageVisibilityBatch": {"Entries": ("ChangeMessageVisibilityBatchRequestEntry", (
        "list", "ChangeMessageVisibilityBatchRequestEntry", {
            "Id": ("Id", "s"), "ReceiptHandle": ("ReceiptHandle", "s"),
            "VisibilityTimeout": ("VisibilityTimeout", "i")}))},
    "TagQueue": {"Tags": ("Tag", ("map", "Tag", "Key", "Value", "s"))},
    "UntagQueue": {"TagKeys": ("TagKey", ("list", "TagKey", "s"))},
}

_MESSAGE = {"MessageId": ("MessageId", "s"), "ReceiptHandle": ("ReceiptHandle", "s"), "MD5OfBody": ("MD5OfBody", "s"),
            "Body": ("Body", "s"), "Attributes": _ATTRIBUTES, "MD5OfMessageAttributes": ("MD5OfMessageAttributes", "s"),
            "MessageAttributes": _MESSAGE_ATTRIBUTES}
# Answers: per operation, its result's members that are not plain text.
_RESULTS: dict[str, dict[str, Any]] = {
    "ListQueues": {"QueueUrls": ("QueueUrl", ("list", "QueueUrl", "s"))},
    "ListDeadLetterSourceQueues": {"queueUrls": ("QueueUrl", ("list", "QueueUrl", "s"))},
    "GetQueueAttributes": {"Attributes": _ATTRIBUTES},
    "ReceiveMessage": {"Messages": ("Message", ("list", "Message", _MESSAGE))},
    "SendMessageBatch": {"Successful": ("SendMessageBatchResultEntry", ("list", "SendMessageBatchResultEntry", {})),
                         "Failed": ("BatchResultErrorEntry", ("list", "BatchResultErrorEntry", _BATCH_ERROR))},
    "DeleteMessageBatch": {"Successful": ("DeleteMessageBatchResultEntry",
                                          ("list", "DeleteMessageBatchResultEntry", {})),
                           "Failed": ("BatchResultErrorEntry", ("list", "BatchResultErrorEntry", _BATCH_ERROR))},
    "ChangeMessageVisibilityBatch": {
        "Successful": ("ChangeMessageVisibilityBatchResultEntry",
                       ("list", "ChangeMessageVisibilityBatchResultEntry", {})),
        "Failed": ("BatchResultErrorEntry", ("list", "BatchResultErrorEntry", _BATCH_ERROR))},
    "ListQueueTags": {"Tags": ("Tag", ("map", "Tag", "Key", "Value", "s"))},
}
_NO_RESULT = {"DeleteMessage", "DeleteQueue", "PurgeQueue", "SetQueueAttributes", "ChangeMessageVisibility",
              "TagQueue", "UntagQueue"}


def is_query(req: Request) -> bool:
    """A query-protocol SQS request (the router found no route for it): a form-encoded POST,
    or a GET naming an ``Action``, to ``/`` or to a queue's URL (``/ACCOUNT/NAME``)."""
    if req.path.strip("/").count("/") > 1:
        return False
    if req.method == "POST":
        return req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    return req.method == "GET" and "Action=" in req.query


# -- the request: flat parameters to JSON --------------------------------------------------


def _tree(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``a.1.b=v`` into ``{"a": {"1": {"b": "v"}}}`` (the last value of a repeated name wins)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return root


def _numbered(node: Any) -> list[Any]:
    """The members ``1``, ``2``, ... of a flattened list or map node, in order."""
    if not isinstance(node, dict):
        return []
    items = sorted((int(k), v) for k, v in node.items() if k.isdigit())
    return [v for _, v in items]


def _convert(node: Any, shape: Any) -> Any:
    if shape == "i":
        try:
            return int(node)
        except (TypeError, ValueError):
            return node  # the JSON edge words the type error
    if shape == "b":
        return node == "true"
    if shape == "s":
        return node
    if isinstance(shape, dict):
        return _structure(node if isinstance(node, dict) else {}, shape)
    kind = shape[0]
    if kind == "list":
        return [_convert(item, shape[2]) for item in _numbered(node)]
    _, _, key_name, value_name, value_shape = shape
    out: dict[str, Any] = {}
    for entry in _numbered(node):
        if isinstance(entry, dict) and key_name in entry:
            out[entry[key_name]] = _convert(entry.get(value_name), value_shape)
    return out


def _structure(node: dict[str, Any], members: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    query_names = {query: json for json, (query, _) in members.items()}
    for key, value in node.items():
        json_name = query_names.get(key)
        if json_name is not None:
            out[json_name] = _convert(value, members[json_name][1])
        elif isinstance(value, str):
            out[key] = value
    return out


def to_json(action: str, params: list[tuple[str, str]], path: str) -> dict[str, Any]:
    tree = _tree([(k, v) for k, v in params if k not in ("Action", "Version")])
    body = _structure(tree, _REQUESTS.get(action, {}))
    queue_path = path.strip("/")
    if "QueueUrl" not in body and queue_path.count("/") == 1:  # sent to the queue's own URL
        body["QueueUrl"] = "/" + queue_path
    return body


# -- the answer: JSON to XML ---------------------------------------------------------------


def _xml(name: str, value: Any, shape: Any) -> str:
    if isinstance(shape, tuple) and shape[0] == "list":
        return "".join(_xml(shape[1], item, shape[2]) for item in value or [])
    if isinstance(shape, tuple) and shape[0] == "map":
        _, query, key_name, value_name, value_shape = shape
        return "".join(f"<{query}><{key_name}>{escape(str(k))}</{key_name}>{_xml(value_name, v, value_shape)}"
                       f"</{query}>" for k, v in (value or {}).items())
    if isinstance(shape, dict):
        return f"<{name}>{_members(value or {}, shape)}</{name}>"
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{name}>{escape(str(value))}</{name}>"


def _members(obj: dict[str, Any], members: dict[str, Any]) -> str:
    out = []
    for key, value in obj.items():
        if key in members:
            query, shape = members[key]
            out.append(_xml(query, value, shape))
        elif isinstance(value, (str, int, bool)):
            out.append(_xml(key, value, "s"))
    return "".join(out)


def to_xml(action: str, obj: dict[str, Any], rid: str) -> bytes:
    meta = f"<ResponseMetadata><RequestId>{rid}</RequestId></ResponseMetadata>"
    result = "" if action in _NO_RESULT else \
        f"<{action}Result>{_members(obj, _RESULTS.get(action, {}))}</{action}Result>"
    return (f'<?xml version="1.0"?><{action}Response xmlns="{NAMESPACE}">{result}{meta}'
            f"</{action}Response>").encode()


def error_xml(status: int, code: str, fault: str, message: str, rid: str) -> Response:
    body = (f'<?xml version="1.0"?><ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{escape(fault)}</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message><Detail/></Error>"
            f"<RequestId>{rid}</RequestId></ErrorResponse>").encode()
    return Response(status, body, [("Content-Type", CONTENT_TYPE), ("x-amzn-RequestId", rid)])


class SqsQueryAPI:
    """The query protocol in front of an ``SqsAPI``."""

    def __init__(self, sqs: SqsAPI) -> None:
        self.sqs = sqs

    def __repr__(self) -> str:
        return f"<SqsQueryAPI {self.sqs!r}>"

    def __call__(self, req: Request, rid: str) -> Response | asyncio.Future[Response]:
        raw = bytes(req.body).decode("utf-8", "replace") if req.method == "POST" else req.query
        params = parse_qsl(raw, keep_blank_values=True)
        if req.method == "POST" and req.query:
            params = parse_qsl(req.query, keep_blank_values=True) + params
        action = next((v for k, v in params if k == "Action"), "")
        if not action:
            exc = err.missing_parameter("Action")
            return error_xml(exc.status, exc.query_code, exc.fault, exc.message, rid)
        inner = Request("POST", "/")
        inner.headers = {"x-amz-target": f"AmazonSQS.{action}", "content-type": "application/x-amz-json-1.0",
                         "host": req.headers.get("host", "localhost")}
        inner.body = msgspec.json.encode(to_json(action, params, req.path))
        answer = self.sqs(inner, rid)
        if isinstance(answer, asyncio.Future):
            out: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

            def done(f: asyncio.Future[Response]) -> None:
                if out.done():
                    return
                if f.cancelled() or f.exception() is not None:
                    out.set_result(error_xml(500, "InternalFailure", "Receiver", "The request failed.", rid))
                else:
                    out.set_result(self._dress(action, f.result(), rid))

            answer.add_done_callback(done)
            return out
        return self._dress(action, answer, rid)

    def _dress(self, action: str, answer: Response, rid: str) -> Response:
        try:
            obj = msgspec.json.decode(bytes(answer.body)) if answer.body else {}
        except msgspec.DecodeError:
            obj = {}
        if answer.status != 200:
            headers = dict(answer.headers)
            code, _, fault = headers.get("x-amzn-query-error", "").partition(";")
            if not code:
                code = str(obj.get("__type", "InternalFailure")).rpartition("#")[2]
            return error_xml(answer.status, code, fault or "Sender", str(obj.get("message", "")), rid)
        return Response(200, to_xml(action, obj if isinstance(obj, dict) else {}, rid),
                        [("Content-Type", CONTENT_TYPE), ("x-amzn-RequestId", rid)])

