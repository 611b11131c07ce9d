"""``kafka://host:port[,host:port]/TOPIC`` — confluent-kafka, keyed by ``user_id``.

A user's events share a key, hence a partition, hence an order; a partition is consumed by
one group member at a time. Offsets are committed by hand after the effects are stored
(never auto-committed), and never past a message given back with ``nack``. Dead letters
go to ``TOPIC.dlq`` with the reason in the headers and the original bytes as the value.
Kafka keeps no delivery counter, so the attempt count is kept by the consumer process
(a message that kills the process itself is retried after each restart).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from chatpersona.exceptions import BackendError
from chatpersona.stream.base import (
    DeadLetter,
    Delivery,
    Transport,
    int_option,
    parse_options,
    register_transport,
    user_of,
)
from chatpersona.stream.events import Event

_log = logging.getLogger("chatpersona.stream.kafka")
_REBALANCING = {27, 22, 25}
"""Commit errors of a group in flux (``REBALANCE_IN_PROGRESS``, ``ILLEGAL_GENERATION``,
``UNKNOWN_MEMBER_ID``): retried by redelivery, not raised."""

__all__ = ["KafkaTransport"]

_CONSUMER_ONLY = (
    "session.",
    "heartbeat.",
    "max.poll.",
    "auto.offset.",
    "group.",
    "partition.assignment",
    "fetch.",
)


@register_transport("kafka")
class KafkaTransport(Transport):
    """Kafka transport.

    Parameters
    ----------
    bootstrap:
        ``host:port[,host:port]`` of the brokers.
    topic:
        The event topic (its partitions decide the parallelism).
    group, max_deliveries:
        Consumer group id and deliveries before dead-lettering; also URL query options:
        ``kafka://127.0.0.1:9092/events?group=workers&max_deliveries=5``; query keys
        with a dot are passed to librdkafka (``session.timeout.ms=6000``).
    config:
        Extra librdkafka settings for both producer and consumer.
    """

    scheme = "kafka"

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        group: str = "chatpersona",
        max_deliveries: int = 5,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.max_deliveries = max_deliveries
        self._config = dict(config or {})
        self._producer: Any = None
        self._consumer: Any = None
        self._attempts: dict[tuple[int, int], int] = {}
        self._nacked: dict[int, int] = {}
        self._pending: dict[int, int] = {}
        """Acked offsets whose commit met a rebalance: retried before the next receive
        and when the partitions are revoked, so a rebalance redelivers as little as it can."""
        self._dead_count = 0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> KafkaTransport:
        netloc, path, query = parse_options(url)
        query.update({k: str(v) for k, v in options.items() if k != "config"})
        if not path or not netloc:
            raise BackendError(
                f"A Kafka URL needs brokers and a topic: kafka://host:port/TOPIC (got {url!r})",
                url=url,
            )
        # Query keys with a dot are librdkafka settings (``session.timeout.ms=6000``).
        config = {k: v for k, v in query.items() if "." in k}
        config.update(options.get("config") or {})
        return cls(
            netloc,
            path,
            group=query.get("group", "chatpersona"),
            max_deliveries=int_option("KafkaTransport", query, "max_deliveries", 5),
            config=config,
        )

    @property
    def dlq_topic(self) -> str:
        """The dead-letter topic."""
        return f"{self.topic}.dlq"

    def _producer_handle(self) -> Any:
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "linger.ms": 5,
                    "enable.idempotence": True,
                    **{k: v for k, v in self._config.items() if not k.startswith(_CONSUMER_ONLY)},
                }
            )
        return self._producer

    def publish(self, items: Sequence[Event | bytes]) -> int:
        producer = self._producer_handle()
        for item in items:
            if isinstance(item, Event):
                raw, uid = item.to_bytes(), item.user_id
            else:
                raw, uid = bytes(item), user_of(item)
            while True:
                try:
                    producer.produce(self.topic, key=uid.encode(), value=raw)
                    break
                except BufferError:
                    producer.poll(0.05)
        left = producer.flush(30)
        if left:
            raise BackendError(f"Kafka publish to {self.topic!r}: {left} messages not delivered")
        return len(items)

    def _consumer_handle(self) -> Any:
        if self._consumer is None:
            from confluent_kafka import Consumer

            self._consumer = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": self.group,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "client.id": f"chatpersona-{uuid.uuid4().hex[:8]}",
                    **self._config,
                }
            )
            self._consumer.subscribe([self.topic], on_revoke=self._on_revoke)
        return self._consumer

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Commit what was acked but not yet committed before the partitions move on."""
        revoked = {tp.partition for tp in partitions}
        owed = {p: o for p, o in self._pending.items() if p in revoked}
        for p in revoked:
            self._pending.pop(p, None)
        if owed:
            self._commit(owed, retry_later=False)

    def _retry_pending(self) -> None:
        if not self._pending or self._consumer is None:
            return
        owned = {tp.partition for tp in self._consumer.assignment()}
        owed = {p: min(o, self._nacked.get(p, o)) for p, o in self._pending.items() if p in owned}
        self._pending.clear()
        self._commit(owed)

    def receive(self, max_messages: int = 500, timeout: float = 1.0) -> list[Delivery]:
        consumer = self._consumer_handle()
        self._retry_pending()
        out: list[Delivery] = []
        for msg in consumer.consume(max_messages, max(timeout, 0.0)):
            if msg.error():
                continue
            part, off = msg.partition(), msg.offset()
            attempt = self._attempts.get((part, off), 0) + 1
            self._attempts[(part, off)] = attempt
            ts = msg.timestamp()[1]
            d = Delivery(f"{part}:{off}", msg.value() or b"", str(part), attempt, ts / 1000)
            if attempt > self.max_deliveries:
                self.dead_letter(d, "max_deliveries", f"delivered {attempt - 1} times without ack")
                continue
            out.append(d)
        return out

    def _commit(self, offsets: dict[int, int], *, retry_later: bool = True) -> None:
        from confluent_kafka import TopicPartition

        if not offsets:
            return
        from confluent_kafka import KafkaError, KafkaException

        tps = [TopicPartition(self.topic, p, o) for p, o in offsets.items()]
        try:
            self._consumer_handle().commit(offsets=tps, asynchronous=False)
            for p, o in offsets.items():
                if self._pending.get(p, o) <= o:
                    self._pending.pop(p, None)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            code = err.code() if isinstance(err, KafkaError) else None
            if code not in _REBALANCING:
                raise
            # The group is rebalancing: the commit is retried once the partitions are
            # revoked or the rebalance is over; if the partition moves before that, its
            # next owner gets these messages again (at least once; effects are idempotent).
            _log.warning("Kafka commit deferred by a group rebalance: %s", err)
            if retry_later:
                for p, o in offsets.items():
                    self._pending[p] = max(self._pending.get(p, -1), o)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        offsets: dict[int, int] = {}
        for d in deliveries:
            part, off = (int(x) for x in d.id.split(":"))
            self._attempts.pop((part, off), None)
            if self._nacked.get(part) == off:
                del self._nacked[part]
            offsets[part] = max(offsets.get(part, -1), off + 1)
        # Never commit past a message that was given back for another attempt.
        for part in list(offsets):
            if part in self._nacked:
                offsets[part] = min(offsets[part], self._nacked[part])
        self._commit(offsets)

    def nack(self, deliveries: Sequence[Delivery]) -> None:
        from confluent_kafka import TopicPartition

        lowest: dict[int, int] = {}
        for d in deliveries:
            part, off = (int(x) for x in d.id.split(":"))
            lowest[part] = min(lowest.get(part, off), off)
        consumer = self._consumer_handle()
        for part, off in lowest.items():
            self._nacked[part] = min(self._nacked.get(part, off), off)
            consumer.seek(TopicPartition(self.topic, part, off))

    def dead_letter(self, delivery: Delivery, reason: str, detail: str = "") -> None:
        producer = self._producer_handle()
        producer.produce(
            self.dlq_topic,
            value=delivery.raw,
            key=delivery.id.encode(),
            headers={
                "reason": reason.encode(),
                "detail": detail[:2000].encode(),
                "source": delivery.id.encode(),
                "attempts": str(delivery.attempt).encode(),
            },
        )
        producer.flush(30)
        self._dead_count += 1
        self.ack([delivery])

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        reader = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"dlq-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                **self._config,
            }
        )
        try:
            meta = reader.list_topics(self.dlq_topic, timeout=10).topics.get(self.dlq_topic)
            if meta is None or meta.error is not None:
                return []
            parts = sorted(meta.partitions)
            ends = {
                p: reader.get_watermark_offsets(TopicPartition(self.dlq_topic, p))[1] for p in parts
            }
            reader.assign([TopicPartition(self.dlq_topic, p, OFFSET_BEGINNING) for p in parts])
            out: list[DeadLetter] = []
            deadline = time.monotonic() + 15
            done = {p for p, end in ends.items() if end <= 0}
            while len(done) < len(parts) and len(out) < limit and time.monotonic() < deadline:
                msg: Any
                for msg in reader.consume(500, 0.5):
                    if msg.error():
                        continue
                    headers: list[tuple[str, bytes | None]] = msg.headers() or []
                    h = {k: (v or b"").decode() for k, v in headers}
                    out.append(
                        DeadLetter(
                            h.get("reason", ""),
                            h.get("detail", ""),
                            msg.value() or b"",
                            h.get("source", ""),
                            int(h.get("attempts", "1") or 1),
                        )
                    )
                    if msg.offset() + 1 >= ends[msg.partition()]:
                        done.add(msg.partition())
            return out[:limit]
        finally:
            reader.close()

    def stats(self) -> dict[str, int]:
        return {"dead_letters": self._dead_count}

    def close(self) -> None:
        if self._consumer is not None:
            # Leave the group now so a successor gets the partitions without waiting for
            # the session timeout.
            self._consumer.unsubscribe()
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None
