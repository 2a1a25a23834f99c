"""A simulated Slurm cluster at the command seam: answers sinfo, squeue (load and status) and sacct as a busy
cluster does, for a FakeTransport (tests/unit/fakes.py). bench/federation.py runs a hundred of them.

Other users' jobs fill each partition (hundreds pending, with Slurm's reasons, and the nodes' worth running);
our jobs wait in the queue for a while (Priority, then Resources, with the start Slurm expects), run, stay
in squeue as COMPLETED for MinJobAge, then are found only in sacct. Time is counted in status queries: a job
moves on each time squeue is asked about it, so a simulation runs as fast as the caller asks."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.config.site_parts import LoginConfig, PartitionConfig
from gateway.config.sites import SiteConfig
from tests.unit.fakes import FakeTransport

GPU_TYPES = ("H100", "A100", "L4", "H200", "B200", "MI300X")

NODE_STATES = ("mix", "alloc", "idle", "alloc", "mix", "drain", "comp")
MIN_JOB_AGE = 3  # status queries a finished job stays in squeue (Slurm's MinJobAge)


@dataclass
class SimJob:
    job_id: str
    partition: str
    wait: int  # status queries it spends pending
    run: int  # then running
    start_at: int  # the start Slurm expects while it is pending (epoch seconds)
    asked: int = 0

    def line(self) -> str | None:
        """The job's line of `squeue -o %i|%T|%r|%S` after one more query; None once it left squeue."""
        self.asked += 1
        if self.asked <= self.wait:
            reason = "Priority" if self.asked <= self.wait // 2 else "Resources"
            return f"{self.job_id}|PENDING|{reason}|{self.start_at}"
        if self.asked <= self.wait + self.run:
            return f"{self.job_id}|RUNNING|None|{self.start_at}"
        if self.asked <= self.wait + self.run + MIN_JOB_AGE:
            return f"{self.job_id}|COMPLETED|None|{self.start_at}"
        return None

    @property
    def load_state(self) -> str | None:
        if self.asked < self.wait:
            return "PENDING"
        return "RUNNING" if self.asked < self.wait + self.run else None


class SimulatedSlurm:
    """One cluster: a partition per GPU type (named after it) of ``nodes`` nodes, others' jobs and ours."""

    def __init__(self, name: str, gpu_types: list[str], *, seed: int, nodes: int = 16) -> None:
        self.name = name
        self.rng = random.Random(seed)
        self.partitions = [gpu.lower() for gpu in gpu_types]
        self.gpu_types = gpu_types
        self.jobs: dict[str, SimJob] = {}
        self.next_id = 1000 + seed * 100_000
        # sinfo: per partition a few node-state groups; one site in ten has a partition down for maintenance
        self.sinfo_lines: list[str] = []
        for n, part in enumerate(self.partitions):
            down = n == 0 and self.rng.random() < 0.1
            for state in self.rng.sample(NODE_STATES, 3):
                self.sinfo_lines.append(f"{part}|{'down' if down else 'up'}|{state}")
        # squeue: the nodes' worth running and a queue of 0 to 400 pending per partition
        self.others: list[str] = []
        for part in self.partitions:
            self.others += [f"{part}|RUNNING"] * (nodes * 4)
            self.others += [f"{part}|PENDING"] * self.rng.choice((0, 0, 5, 40, 150, 400))
        self.status_queries = 0  # squeue -j (a monitor round)
        self.load_queries = 0  # squeue -p (routing's partition load)
        self.sacct_queries = 0
        self.jobs_asked = 0  # job ids named in status queries, over all queries

    def site(self, preference: int | None = None) -> SiteConfig:
        return SiteConfig(
            name=self.name,
            login=LoginConfig(
                host=f"login.{self.name}.example",
                user="gw",
                identity_file=Path("/k"),
                known_hosts=Path("/kh"),
            ),
            workdir="runs",
            preference=self.rng.randrange(10, 200) if preference is None else preference,
            partitions=[
                PartitionConfig(name=part, gpu_type=gpu, gres=f"gpu:{part}:1")
                for part, gpu in zip(self.partitions, self.gpu_types, strict=True)
            ],
        )

    def transport(self) -> FakeTransport:
        return FakeTransport(self.answer)

    def add_job(self, partition: str, wait: int, run: int) -> str:
        """One of our jobs, queued now: pending for ``wait`` status queries, then running for ``run``."""
        self.next_id += 1
        job_id = str(self.next_id)
        start = int(time.time()) + 60 * wait
        self.jobs[job_id] = SimJob(job_id, partition, wait, run, start)
        return job_id

    def answer(self, argv: list[str], stdin: str | bytes | None) -> tuple[int, str, str]:
        if argv[:3] == ["env", "SLURM_TIME_FORMAT=%s", "squeue"]:
            return self._status(argv[argv.index("-j") + 1].split(","))
        if argv[0] == "squeue" and "-p" in argv:
            self.load_queries += 1
            return 0, self._load(), ""
        if argv[0] == "sinfo":
            return 0, "\n".join(self.sinfo_lines) + "\n", ""
        if argv[0] == "sacct":
            self.sacct_queries += 1
            ids = argv[argv.index("-j") + 1].split(",")
            return 0, "".join(f"{i}|COMPLETED|0:0\n" for i in ids if i in self.jobs), ""
        return 0, "", ""

    def _status(self, ids: list[str]) -> tuple[int, str, str]:
        self.status_queries += 1
        self.jobs_asked += len(ids)
        lines = [line for i in ids if i in self.jobs and (line := self.jobs[i].line()) is not None]
        if not lines:
            return 1, "", "slurm_load_jobs error: Invalid job id specified\n"
        return 0, "\n".join(lines) + "\n", ""

    def _load(self) -> str:
        # the queue moves between looks: a few of others' jobs start or end
        for _ in range(3):
            self.others[self.rng.randrange(len(self.others))] = (
                f"{self.rng.choice(self.partitions)}|{self.rng.choice(('PENDING', 'RUNNING'))}"
            )
        ours = [f"{j.partition}|{state}" for j in self.jobs.values() if (state := j.load_state)]
        return "\n".join(self.others + ours) + "\n"
