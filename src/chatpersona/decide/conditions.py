"""Conditions on a decision context, shared by rules and guardrails.

A condition is a mapping ``{key: spec}``; all keys must match (AND). Keys name a context
field (``segment``, ``intent``, ``category``, ``channel``, ``device``, ``hour``, ``weekday``)
or a dotted path into it (``attributes.is_vip``, ``features.csat_mean``, ``consent.marketing``).

Specs:

- a string: case-insensitive match, shell wildcards allowed (``"*cancel*"``);
- a number or a boolean: equality (``"yes"``/``"true"``/``"1"`` count as true);
- a list: any element matches;
- a mapping of operators: ``eq``, ``ne``, ``in``, ``not_in``, ``lt``, ``le``, ``gt``, ``ge``,
  ``between: [lo, hi]`` (inclusive; wraps around when ``lo > hi``, e.g. hours 22..6),
  ``exists: true|false``.

A field missing from the context matches nothing except ``ne``, ``not_in`` and
``exists: false``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from chatpersona.exceptions import PlanError

__all__ = ["Condition", "compile_condition", "lookup"]

_MISSING = object()
_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f", ""}
_OPS = {"eq", "ne", "in", "not_in", "lt", "le", "gt", "ge", "between", "exists"}

Matcher = Callable[[Any], bool]


def lookup(context: Mapping[str, Any], key: str) -> Any:
    """The value at a (dotted) key of a context, or a private sentinel when missing."""
    if "." not in key:
        value = context.get(key, _MISSING)
        return _MISSING if value is None else value
    value = context
    for part in key.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return _MISSING
    return _MISSING if value is None else value


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _scalar(spec: Any, where: str) -> Matcher:
    if isinstance(spec, bool):
        return lambda v: v is not _MISSING and _as_bool(v) is spec
    if isinstance(spec, int | float):
        target = float(spec)
        return lambda v: v is not _MISSING and _as_float(v) == target
    if isinstance(spec, str):
        return _string_matcher([spec.strip().lower()])
    raise PlanError(
        f"Condition {where} must be a string, number, boolean, list or operator mapping. "
        f"Got {spec!r} instead.",
        key=where,
        value=spec,
    )


_CACHE_SIZE = 4096


def _string_matcher(patterns: list[str]) -> Matcher:
    """Case-insensitive match against any of ``patterns`` (shell wildcards allowed).

    Results for string values are memoized (bounded): contexts repeat the same few
    segments and intents, and ``fnmatch`` on every decision is the slow part.
    """
    plain = frozenset(p for p in patterns if not any(ch in p for ch in "*?["))
    globs = [p for p in patterns if p not in plain]
    cache: dict[str, bool] = {}

    def compute(v: Any) -> bool:
        text = str(v).strip().lower()
        if text in plain:
            return True
        return any(fnmatchcase(text, g) for g in globs)

    def match(v: Any) -> bool:
        if v is _MISSING:
            return False
        if type(v) is not str:  # never memoize non-strings (True == 1 but "True" != "1")
            return compute(v)
        hit = cache.get(v)
        if hit is None:
            hit = compute(v)
            if len(cache) < _CACHE_SIZE:
                cache[v] = hit
        return hit

    return match


def _number(spec: Any, where: str, op: str) -> float:
    value = _as_float(spec)
    if value is None or isinstance(spec, bool):
        raise PlanError(
            f"Operator {op!r} of condition {where} needs a number. Got {spec!r} instead.",
            key=where,
            value=spec,
        )
    return value


def _operator(op: str, arg: Any, where: str) -> Matcher:
    if op == "eq":
        return _scalar(arg, where)
    if op == "ne":
        m = _scalar(arg, where)
        return lambda v: not m(v)
    if op in ("in", "not_in"):
        if not isinstance(arg, list):
            raise PlanError(
                f"Operator {op!r} of condition {where} needs a list. Got {arg!r} instead.",
                key=where,
                value=arg,
            )
        ms = [_scalar(a, where) for a in arg]
        if op == "in":
            return lambda v: any(m(v) for m in ms)
        return lambda v: not any(m(v) for m in ms)
    if op == "exists":
        want = bool(arg)
        return lambda v: (v is not _MISSING) is want
    if op == "between":
        if not isinstance(arg, list) or len(arg) != 2:
            raise PlanError(
                f"Operator 'between' of condition {where} needs [low, high]. Got {arg!r} instead.",
                key=where,
                value=arg,
            )
        lo, hi = _number(arg[0], where, op), _number(arg[1], where, op)

        def between(v: Any) -> bool:
            x = _as_float(v) if v is not _MISSING else None
            if x is None:
                return False
            return lo <= x <= hi if lo <= hi else (x >= lo or x <= hi)

        return between
    bound = _number(arg, where, op)
    compare: dict[str, Callable[[float], bool]] = {
        "lt": lambda x: x < bound,
        "le": lambda x: x <= bound,
        "gt": lambda x: x > bound,
        "ge": lambda x: x >= bound,
    }
    cmp = compare[op]

    def numeric(v: Any) -> bool:
        x = _as_float(v) if v is not _MISSING else None
        return x is not None and cmp(x)

    return numeric


def _compile_spec(spec: Any, where: str) -> Matcher:
    if isinstance(spec, list):
        if spec and all(isinstance(s, str) for s in spec):  # one memoized matcher
            return _string_matcher([s.strip().lower() for s in spec])
        ms = [_compile_spec(s, where) for s in spec]

        def any_of(v: Any) -> bool:
            for m in ms:  # noqa: SIM110 - no generator on the hot path
                if m(v):
                    return True
            return False

        return any_of
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - _OPS)
        if unknown:
            raise PlanError(
                f"Unknown operator(s) {', '.join(map(str, unknown))} in condition {where}. "
                f"Known: {', '.join(sorted(_OPS))}.",
                key=where,
                value=unknown,
            )
        ms = [_operator(op, arg, where) for op, arg in spec.items()]
        return lambda v: all(m(v) for m in ms)
    return _scalar(spec, where)


class Condition:
    """A compiled condition: ``Condition(when)(context) -> bool``.

    Examples
    --------
    >>> c = Condition({"segment": ["vip*", "loyal"], "features.csat_mean": {"lt": 3}})
    >>> c({"segment": "VIP gold", "features": {"csat_mean": 2.5}})
    True
    >>> c({"segment": "bargain", "features": {"csat_mean": 2.5}})
    False
    """

    def __init__(self, when: Mapping[str, Any] | None, *, where: str = "when") -> None:
        if when is not None and not isinstance(when, Mapping):
            raise PlanError(
                f"{where} must be a mapping of context keys to conditions. Got {when!r} instead.",
                key=where,
                value=when,
            )
        self.when = dict(when or {})
        self._parts = [(k, _compile_spec(s, f"{where}.{k}")) for k, s in self.when.items()]
        self._plain = ["." not in k for k in self.when]

    def __call__(self, context: Mapping[str, Any]) -> bool:
        for (key, matcher), plain in zip(self._parts, self._plain, strict=True):
            if plain:  # lookup() inlined for an undotted key
                value = context.get(key, _MISSING)
                if value is None:
                    value = _MISSING
            else:
                value = lookup(context, key)
            if not matcher(value):
                return False
        return True

    def __repr__(self) -> str:
        return f"Condition({self.when!r})"


def compile_condition(when: Mapping[str, Any] | None, *, where: str = "when") -> Condition:
    """Compile (and validate) a condition mapping; an invalid one raises :class:`PlanError`."""
    return Condition(when, where=where)
