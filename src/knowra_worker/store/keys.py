"""Every Redis key the service uses, in one place.

{p}task:{id}                hash: the task status, its parameters, epoch and checkpoint
{p}task:{id}:chunks:{g}     hash: seq -> chunk JSON, one per run generation g
{p}task:{id}:stage          hash: chunks of a large unit held apart until its commit
{p}lease:{id}               string with TTL: the instance whose worker holds the task
{p}tasks                    sorted set: task ids by creation time
{p}active                   set: ids of tasks not yet final (watched by the recovery loop)
{p}recovery                 string with TTL: the instance running the recovery sweep now
{p}kb:{kb_id}:tasks         sorted set: a knowledge base's task ids by creation time
{p}instance:{id}            string with TTL: one live instance's registration (JSON)
{p}instance:{id}:celery     string: pid of the instance's Celery worker once ready
{p}instances                sorted set: instance ids by last heartbeat
{p}celery:...               Celery's own queues (kombu's global key prefix)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "knowra:"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}task:{task_id}"

    def chunks_base(self, task_id: str) -> str:
        return f"{self.prefix}task:{task_id}:chunks"

    def chunks(self, task_id: str, gen: int) -> str:
        return f"{self.chunks_base(task_id)}:{gen}"

    def parts(self, task_id: str) -> str:
        return f"{self.prefix}task:{task_id}:parts"

    def units(self, task_id: str) -> str:
        return f"{self.prefix}task:{task_id}:units"

    def part_lease(self, task_id: str, part: int) -> str:
        return f"{self.lease(task_id)}:part:{part}"

    def stage(self, task_id: str) -> str:
        return f"{self.prefix}task:{task_id}:stage"

    @property
    def celery_prefix(self) -> str:
        """kombu's global key prefix: Celery's queues live under it."""
        return f"{self.prefix}celery:"

    def celery_queue_lists(self, queue: str) -> list[str]:
        """The Redis lists holding a queue's waiting messages, one per priority step."""
        name = f"{self.celery_prefix}{queue}"
        return [name] + [f"{name}\x06\x16{step}" for step in range(1, 10)]

    @property
    def active(self) -> str:
        return f"{self.prefix}active"

    @property
    def recovery(self) -> str:
        return f"{self.prefix}recovery"

    def lease(self, task_id: str) -> str:
        return f"{self.prefix}lease:{task_id}"

    @property
    def tasks(self) -> str:
        return f"{self.prefix}tasks"

    def kb_tasks(self, kb_id: str) -> str:
        return f"{self.prefix}kb:{kb_id}:tasks"

    def instance(self, instance_id: str) -> str:
        return f"{self.prefix}instance:{instance_id}"

    def celery_ready(self, instance_id: str) -> str:
        return f"{self.prefix}instance:{instance_id}:celery"

    def pool_warm(self, instance_id: str) -> str:
        return f"{self.prefix}instance:{instance_id}:warm"

    @property
    def instances(self) -> str:
        return f"{self.prefix}instances"
