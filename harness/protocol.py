"""The result contract shared by the harness (on the GPU node) and the gateway: one definition for both.

Here: exit codes, the submission's file name as shown, GPU MODE's key/value lines and test specs, and the
result's authentication (HMAC). What a result says is harness/run_result.py (a run) and
harness/phase_result.py (one phase).

Standard library only. Exceptions::

    HarnessError
    ├── ProtocolError     malformed key/value text, test spec or result payload
    └── ResultAuthError   a result.json whose tag does not verify with the run's key
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

RESULT_VERSION = 1
EXIT_VALIDATION_FAILED = 112
EXIT_BAD_TEST_SPEC = 113
EXIT_TIMEOUT = 114
PROGRESS_PREFIX = "[harness] "
PROFILE_REPORT_LIMIT = 16 * 1024  # characters of one benchmark's profiler table that travel
EXIT_MEANINGS = {
    EXIT_VALIDATION_FAILED: "validation failed",
    EXIT_BAD_TEST_SPEC: "the test specification could not be read",
    EXIT_TIMEOUT: "the evaluator timed out",
}


class HarnessError(Exception):
    """Root of every error the harness raises."""


class ProtocolError(HarnessError):
    """Key/value text, a test spec or a result payload is malformed."""


class ResultAuthError(HarnessError):
    """A result's tag does not verify with the run's key."""


# -- the submission's file name as its author knows it ---------------------------------------------------

SUBMISSION_FILE = "submission.py"  # what the bundle stores the code as (the module the task imports)
FILE_NAME_ENV = "HARNESS_FILE_NAME"  # how the runner tells the built-in evaluator the user's name for it
CACHE_DIR_ENV = "HARNESS_CACHE_DIR"  # and the run's folder for the compilers' caches (harness/sandbox.py)
MAX_SHOWN_NAME = 80
_PLAIN_NAME = re.compile(r"[\w.+=,~@()\[\]…-]+")  # \w: letters and digits of any script, and _; … of a cut
# a run id as it names the run's bundle folder: one path component (gateway.running.bundle checks it too)
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# a warm pool's own progress lines (harness/pool.py) that the gateway acts on
POOL_READY = "pool ready"
POOL_ENDED = "pool ended"


def shown_file_name(name: object) -> str:
    """The user's own name of the submitted file (spec.json ``file_name``), for messages only: it is never
    a path the harness opens. Untrusted: a name of plain characters shows as it is, any other quoted and
    escaped (repr), a long one cut in the middle; none (an older gateway's spec) is the bundle's name."""
    if not isinstance(name, str) or not name.strip():
        return SUBMISSION_FILE
    if len(name) > MAX_SHOWN_NAME:
        name = f"{name[: MAX_SHOWN_NAME - 21]}…{name[-20:]}"
    return name if _PLAIN_NAME.fullmatch(name) else repr(name)


def shown_paths(text: str, replacements: Sequence[tuple[str, str]]) -> str:
    """``text`` with each path in ``replacements`` (longest first, as given) replaced by what users see:
    the submission's own file name for its bundle path, nothing for the folders of the site's workdir."""
    for path, shown in replacements:
        if path:
            text = text.replace(path, shown)
    return text


# -- GPU MODE's key/value protocol -------------------------------------------------------------------


def parse_kv(text: str) -> dict[str, str]:
    """``key: value`` lines; a repeated key is refused (a forged second line must not win)."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
            if not sep or value:
                raise ProtocolError(f"line {number}: expected 'key: value', got {line[:80]!r}")
        key = key.strip()
        if key in values:
            raise ProtocolError(f"line {number}: key {key!r} appears twice")
        values[key] = value.strip()
    return values


TestValue = int | float | str | list[int | float | str]


def format_test_spec(case: Mapping[str, object]) -> str:
    """``{"size": 127, "seed": 1}`` -> ``size: 127; seed: 1`` (insertion order); a list as reference-kernels'
    grouped tasks read it: ``{"m": [96, 128]}`` -> ``m: [96, 128]``. ProtocolError for a case that would
    not read back (a ``;`` or line break in a value, a ``:`` in a key, a list in a list)."""
    bad_key = next((key for key in case if any(c in str(key) for c in ":;\n\r")), None)
    if bad_key is not None:
        raise ProtocolError(f"test case key {str(bad_key)[:80]!r}: a key holds no ':', ';' or line break")
    return "; ".join(f"{key}: {_format_value(str(key), value)}" for key, value in case.items())


def _format_value(key: str, value: object) -> str:
    if isinstance(value, list | tuple):
        items = [str(item) for item in value]
        if any(isinstance(item, list | tuple | dict) for item in value) or any(
            c in text for text in items for c in ",[];\n\r"
        ):
            raise ProtocolError(f"test case {key}: {value!r}: a list holds plain numbers or words")
        return "[" + ", ".join(items) + "]"
    text = str(value)
    if any(c in text for c in ";\n\r") or (text.startswith("[") and text.endswith("]")):
        raise ProtocolError(f"test case {key}: {text[:80]!r} cannot be written as 'key: value; ...'")
    return text


def _scalar(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _value(text: str) -> TestValue:
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_scalar(item.strip()) for item in inner.split(",")] if inner else []
    return _scalar(text)


def parse_test_spec(line: str) -> dict[str, TestValue]:
    """``size: 127; seed: 4242`` -> ``{"size": 127, "seed": 4242}``; ``m: [96, 128]``: a list."""
    case: dict[str, TestValue] = {}
    for part in line.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition(":")
        if not sep or not key.strip():
            raise ProtocolError(f"bad test spec {line!r}: expected 'key: value; key: value'")
        case[key.strip()] = _value(value.strip())
    return case


def encode_report(report: str) -> str:
    """A profiler table (many lines) as one ``key: value`` value: a JSON string, cut to
    PROFILE_REPORT_LIMIT characters with a note saying so."""
    if len(report) > PROFILE_REPORT_LIMIT:
        report = report[:PROFILE_REPORT_LIMIT] + f"\n[cut at {PROFILE_REPORT_LIMIT} characters]"
    return json.dumps(report)


def decode_report(value: str) -> str:
    """``encode_report``'s inverse; a value written before reports were encoded (one line) as it is."""
    if value.startswith('"'):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, str):
            return decoded[: PROFILE_REPORT_LIMIT + 64]
    return value


# -- authentication ----------------------------------------------------------------------------------


def canonical_json(obj: Any) -> bytes:
    """The exact bytes the HMAC tag covers."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def load_key_hex(text: str) -> bytes:
    """The key file's content (hex, whitespace around it ignored) as bytes."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise ProtocolError("the run key is not hex") from exc
    if len(key) < 16:
        raise ProtocolError("the run key is too short")
    return key


def _tag(payload: Mapping[str, Any], key: bytes) -> str:
    return hmac.new(key, canonical_json(payload), hashlib.sha256).hexdigest()


def sign_result(payload: dict[str, Any], key: bytes) -> dict[str, Any]:
    """result.json's document: the payload and its HMAC-SHA256 tag."""
    return {"payload": payload, "tag": _tag(payload, key)}


def verify_result(document: Mapping[str, Any], key: bytes) -> dict[str, Any]:
    """The payload of a signed result, or ResultAuthError when the tag does not match."""
    if not isinstance(document, Mapping):
        raise ProtocolError("result.json is not an object")
    payload, tag = document.get("payload"), document.get("tag")
    if not isinstance(payload, dict) or not isinstance(tag, str):
        raise ProtocolError("result.json needs a 'payload' object and a 'tag' string")
    if not hmac.compare_digest(_tag(payload, key), tag):
        raise ResultAuthError("result tag does not verify")
    return payload
