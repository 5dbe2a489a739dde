"""JSON log lines carry the fields passed with `extra=`, e.g. the JIT token."""

import json
import logging

from config.logging import JsonFormatter


def test_given_extra_fields_when_formatted_then_one_json_object_with_them():
    record = logging.makeLogRecord(
        {"name": "jit", "levelname": "INFO", "msg": "jit %s", "args": ("t-1",),
         "jit_token": "t-1", "outcome": "approved"}
    )  # fmt: skip
    line = json.loads(JsonFormatter().format(record))
    assert (line["message"], line["jit_token"], line["outcome"]) == ("jit t-1", "t-1", "approved")
    assert line["level"] == "INFO"
