"""Profile mode's Nsight Compute reports (migration 0009): one file per run, read back whole."""

from __future__ import annotations

import uuid

from gateway.store.base import StoreBase, retried


class ProfilesStore(StoreBase):
    @retried
    async def save_ncu_report(self, run_id: str, report: bytes) -> None:
        """Keep a run's report (the table's CHECK holds it to 20 MiB); a second save replaces the first."""
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO run_profiles (run_id, ncu_report) VALUES ($1, $2) "
                "ON CONFLICT (run_id) DO UPDATE SET ncu_report = EXCLUDED.ncu_report, created_at = now()",
                uuid.UUID(run_id),
                report,
            )

    @retried
    async def ncu_report(self, run_id: str) -> bytes | None:
        """A run's report, or None when it has none."""
        async with self._conn() as conn:
            data: bytes | None = await conn.fetchval(
                "SELECT ncu_report FROM run_profiles WHERE run_id = $1", uuid.UUID(run_id)
            )
        return data
