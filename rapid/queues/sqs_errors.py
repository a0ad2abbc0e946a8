"""SQS's errors as the JSON protocol carries them.

SQS moved from the query protocol to JSON keeping its old codes: the body is
``{"__type": "com.amazonaws.sqs#<Shape>", "message": ...}`` and the header
``x-amzn-query-error: <QueryCode>;Sender`` carries the code query clients knew, which
botocore reports as the error's ``Code`` (``AWS.SimpleQueueService.NonExistentQueue``).
Errors SQS's model does not name (InvalidParameterValue, MissingParameter, ...) come from
AWS's common service layer: their ``__type`` is ``com.amazon.coral.service#<Name>``.
"""

from __future__ import annotations


class SqsError(Exception):
    """One error of the SQS API: ``shape`` names the modelled exception (``__type``),
    ``query_code`` the query protocol's code, ``status`` the HTTP status."""

    def __init__(self, shape: str, query_code: str, message: str, status: int = 400, fault: str = "Sender") -> None:
        super().__init__(message)
        self.shape = shape
        self.query_code = query_code
        self.message = message
        self.status = status
        self.fault = fault

    @property
    def type(self) -> str:
        """The body's ``__type``."""
        return self.shape if "#" in self.shape else f"com.amazonaws.sqs#{self.shape}"

    def __repr__(self) -> str:
        return f"<SqsError {self.query_code}: {self.message}>"


def queue_does_not_exist() -> SqsError:
    return SqsError("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.")


def invalid_parameter(message: str) -> SqsError:
    return SqsError("com.amazon.coral.service#InvalidParameterValueException", "InvalidParameterValue", message)


def invalid_value(name: str, value: object, reason: str) -> SqsError:
    return invalid_parameter(f"Value {value} for parameter {name} is invalid. Reason: {reason}")


def missing_parameter(name: str) -> SqsError:
    return SqsError("com.amazon.coral.service#MissingParameterException", "MissingParameter",
                    f"The request must contain the parameter {name}.")


def invalid_attribute_name(name: str) -> SqsError:
    return SqsError("InvalidAttributeName", "InvalidAttributeName", f"Unknown Attribute {name}.")


def invalid_attribute_value(name: str, reason: str) -> SqsError:
    return SqsError("InvalidAttributeValue", "InvalidAttributeValue",
                    f"Invalid value for the parameter {name}. Reason: {reason}")


def queue_name_exists(attribute: str) -> SqsError:
    return SqsError("QueueNameExists", "QueueAlreadyExists",
                    f"A queue already exists with the same name and a different value for attribute {attribute}")


def receipt_handle_invalid(handle: str) -> SqsError:
    return SqsError("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid",
                    f'The input receipt handle "{handle}" is not a valid receipt handle.')


def message_not_inflight() -> SqsError:
    return SqsError("MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight",
                    "The message referred to isn't in flight.")


def invalid_contents() -> SqsError:
    return SqsError("InvalidMessageContents", "InvalidMessageContents",
                    "Invalid characters found. Valid values are #x9 | #xA | #xD | #x20 to #xD7FF | "
                    "#xE000 to #xFFFD | #x10000 to #x10FFFF")


def empty_batch(entry: str) -> SqsError:
    return SqsError("EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest",
                    f"There should be at least one {entry} in the request.")


def too_many_entries(n: int) -> SqsError:
    return SqsError("TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                    f"Maximum number of entries per request are 10. You have sent {n}.")


def ids_not_distinct(entry_id: str) -> SqsError:
    return SqsError("BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                    f"Id {entry_id} repeated.")


def invalid_batch_id() -> SqsError:
    return SqsError("InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId",
                    "A batch entry id can only contain alphanumeric characters, hyphens and underscores. "
                    "It can be at most 80 letters long.")


def batch_too_long(size: int, limit: int) -> SqsError:
    return SqsError("BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong",
                    f"Batch requests cannot be longer than {limit} bytes. You have sent {size} bytes.")


def unknown_operation(name: str) -> SqsError:
    return SqsError("com.amazon.coral.service#UnknownOperationException", "UnknownOperation",
                    f"The action {name} is not valid for this endpoint.")


def unsupported(message: str) -> SqsError:
    return SqsError("UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", message)


def serialization(message: str) -> SqsError:
    return SqsError("com.amazon.coral.service#SerializationException", "SerializationException", message)
