"""Turns the raw result.json of a run into a verified RunResult (never trusting anything unsigned)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from gateway.core.errors import ResultError
from harness.protocol import HarnessError, ResultAuthError, load_key_hex, verify_result
from harness.run_result import RunResult


def verified_result(raw: bytes | None, key_hex: str, run_id: str) -> RunResult:
    """Parse and authenticate ``raw`` with the run's key; raise ResultError saying what is wrong."""
    if raw is None:
        raise ResultError(f"run {run_id}: the harness wrote no result.json")
    try:
        document = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ResultError(f"run {run_id}: result.json is not JSON ({exc})") from exc
    try:
        payload = verify_result(document, load_key_hex(key_hex))
        result = RunResult.from_payload(payload)
    except ResultAuthError as exc:
        raise ResultError(f"run {run_id}: result.json failed authentication; it is ignored") from exc
    except HarnessError as exc:
        raise ResultError(f"run {run_id}: result.json is malformed: {exc}") from exc
    if result.run_id != run_id:
        raise ResultError(f"run {run_id}: result.json belongs to run {result.run_id}")
    return result


def verified_ncu_report(data: bytes | None, signed: Mapping[str, Any], run_id: str) -> bytes:
    """The Nsight Compute report fetched from a run's bundle, if it is the one result.json signed (its
    size and SHA-256); ResultError saying what is wrong otherwise."""
    if data is None:
        raise ResultError(f"run {run_id}: its Nsight Compute report is not in its bundle")
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != signed.get("size") or not hmac.compare_digest(digest, str(signed.get("sha256"))):
        raise ResultError(
            f"run {run_id}: the Nsight Compute report in its bundle is not the one its result names"
        )
    return data
