"""``redis+cluster://host:port[,host:port...]`` — the real-time state store on Redis Cluster.

The single-primary :class:`~chatpersona.stream.state.RedisStateStore` commits a whole batch
in one Lua script; on Redis Cluster a script may only touch keys of one hash slot, so this
store hash-tags every key by **user**: a user's state document, its CSAT fence and the
markers of the events that changed it share one slot, and a batch commits as one Lua script
per user — the state change and "this event is processed" stay atomic per user, which is
what the worker's exactly-once effects need (an event only ever changes its own user).

Key layout (``prefix`` default ``cp:state:``)::

    {prefix}{tenant:user}s:<state key>     the user's documents (state, fence)
    {prefix}{tenant:user}d:<event id>      a processed event of that user

The worker passes each event's owner (:meth:`seen_owned`, :meth:`commit_owned`); the plain
:meth:`seen` / :meth:`commit` of the base class tag an event marker by its own id instead —
atomic per slot only, fine for tools but not for the worker. Round trips: loads and dedupe
checks are one ``MGET`` per node; a commit is one pipeline of ``EVALSHA`` per node (scripts
are loaded on every primary; a moved slot or a missing script falls back to the cluster
client, which follows the redirection). Every key is written with ``EX``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chatpersona.exceptions import BackendError
from chatpersona.stream.base import parse_options
from chatpersona.stream.state import (
    _COMMIT,
    DEFAULT_DEDUPE_TTL_S,
    DEFAULT_TTL_S,
    StateStore,
    _encode,
    _ttls,
    register_state,
)

__all__ = ["RedisClusterStateStore", "slot_tag"]


def _decode(raw: bytes | str) -> dict[str, Any]:
    import json

    value: dict[str, Any] = json.loads(raw)
    return value


def slot_tag(key: str) -> str:
    """The hash tag of a state key: the user key after the last ``!`` (so ``fb!t:u`` — the
    pipeline's CSAT fence of ``t:u`` — shares its user's slot). Braces are escaped away.

    Examples
    --------
    >>> slot_tag("acme:u1"), slot_tag("fb!acme:u1")
    ('acme:u1', 'acme:u1')
    """
    return key.rsplit("!", 1)[-1].replace("{", "(").replace("}", ")")


@register_state("redis+cluster", "rediss+cluster")
class RedisClusterStateStore(StateStore):
    """Real-time state on Redis Cluster, keys hash-tagged per user (see the module doc).

    Parameters
    ----------
    nodes:
        ``[(host, port), ...]`` startup nodes (any of the cluster's nodes).
    prefix, ttl_s, dedupe_ttl_s:
        As :class:`~chatpersona.stream.state.RedisStateStore`.
    ssl:
        ``rediss+cluster://``: TLS to every node.
    """

    scheme = "redis+cluster"

    def __init__(
        self,
        nodes: Sequence[tuple[str, int]],
        *,
        prefix: str = "cp:state:",
        ttl_s: int = DEFAULT_TTL_S,
        dedupe_ttl_s: int = DEFAULT_DEDUPE_TTL_S,
        ssl: bool = False,
    ) -> None:
        from redis.cluster import ClusterNode, RedisCluster

        self.prefix = prefix
        self.ttl_s = ttl_s
        self.dedupe_ttl_s = dedupe_ttl_s
        try:
            self._client: Any = RedisCluster(
                startup_nodes=[ClusterNode(h, p) for h, p in nodes], ssl=ssl
            )
            self._sha = self._client.script_load(_COMMIT)  # on every primary
        except Exception as exc:  # redis raises its own family, cluster setup others
            raise BackendError(f"Redis Cluster state store unavailable: {exc}") from exc
        self._script = self._client.register_script(_COMMIT)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisClusterStateStore:
        netloc, _path, query = parse_options(url)
        query.update(options)
        ttl, dedupe = _ttls("RedisClusterStateStore", query)
        nodes = []
        for part in netloc.split(","):
            host, _, port = part.rpartition(":")
            nodes.append((host or "127.0.0.1", int(port or 6379)))
        return cls(
            nodes,
            prefix=str(query.get("prefix", "cp:state:")),
            ttl_s=ttl,
            dedupe_ttl_s=dedupe,
            ssl=url.startswith("rediss+"),
        )

    # -- keys -----------------------------------------------------------------------------
    def _state_key(self, key: str) -> str:
        return f"{self.prefix}{{{slot_tag(key)}}}s:{key}"

    def _event_key(self, event_id: str, owner: str | None) -> str:
        tag = slot_tag(owner) if owner is not None else slot_tag(event_id)
        return f"{self.prefix}{{{tag}}}d:{event_id}"

    def _wrap(self, what: str, fn: Callable[[], Any]) -> Any:
        import redis

        try:
            return fn()
        except redis.RedisError as exc:
            raise BackendError(f"Redis Cluster state {what} failed: {exc}") from exc

    # -- reads ----------------------------------------------------------------------------
    def load(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        values = self._wrap(
            "load", lambda: self._client.mget_nonatomic([self._state_key(k) for k in keys])
        )
        return {k: _decode(v) for k, v in zip(keys, values, strict=True) if v is not None}

    def seen(self, event_ids: Sequence[str]) -> set[str]:
        return self.seen_owned(event_ids, None)

    def seen_owned(self, event_ids: Sequence[str], owners: Sequence[str] | None) -> set[str]:
        """Which events were processed; ``owners[i]`` is the state key of ``event_ids[i]``'s
        user (the same owners as given to :meth:`commit_owned`)."""
        if not event_ids:
            return set()
        own = owners if owners is not None else [None] * len(event_ids)
        keys = [self._event_key(e, o) for e, o in zip(event_ids, own, strict=True)]
        values = self._wrap("dedupe", lambda: self._client.mget_nonatomic(keys))
        return {e for e, v in zip(event_ids, values, strict=True) if v is not None}

    # -- writes ---------------------------------------------------------------------------
    def commit(self, states: Mapping[str, dict[str, Any]], event_ids: Sequence[str]) -> None:
        self.commit_owned(states, event_ids, None)

    def commit_owned(
        self,
        states: Mapping[str, dict[str, Any]],
        event_ids: Sequence[str],
        owners: Sequence[str] | None,
    ) -> None:
        """Store ``states`` and mark ``event_ids`` processed: one atomic script per user
        (per hash slot), all with their TTLs."""
        groups: dict[str, tuple[list[str], list[Any], list[str]]] = defaultdict(
            lambda: ([], [], [])
        )
        for key, doc in states.items():
            skeys, docs, _ = groups[slot_tag(key)]
            skeys.append(self._state_key(key))
            docs.append(_encode(doc))
        own = owners if owners is not None else [None] * len(event_ids)
        for e, o in zip(event_ids, own, strict=True):
            groups[slot_tag(o if o is not None else e)][2].append(self._event_key(e, o))
        if groups:
            self._wrap("commit", lambda: self._run_scripts(list(groups.values())))

    def _run_scripts(self, groups: list[tuple[list[str], list[Any], list[str]]]) -> None:
        import redis

        by_node: dict[str, list[tuple[Any, list[str], list[Any]]]] = defaultdict(list)
        for skeys, docs, ekeys in groups:
            keys = skeys + ekeys
            args = [len(skeys), self.ttl_s, self.dedupe_ttl_s, *docs]
            node = self._client.get_node_from_key(keys[0])
            by_node[node.name].append((node, keys, args))
        for items in by_node.values():
            conn = self._client.get_redis_connection(items[0][0])
            pipe = conn.pipeline(transaction=False)
            for _node, keys, args in items:
                pipe.evalsha(self._sha, len(keys), *keys, *args)
            results = pipe.execute(raise_on_error=False)
            for (_node, keys, args), res in zip(items, results, strict=True):
                if isinstance(res, redis.ResponseError | redis.ConnectionError):
                    # MOVED/ASK after a resharding, NOSCRIPT after a fail-over: the cluster
                    # client follows redirections and loads the script where it runs
                    self._script(keys=keys, args=args)
                elif isinstance(res, Exception):
                    raise res

    def delete(self, keys: Sequence[str]) -> None:
        if keys:
            self._wrap("delete", lambda: self._client.delete(*[self._state_key(k) for k in keys]))

    def close(self) -> None:
        self._client.close()
