"""The reference chatbot's words: Jinja2 templates per intent category x tone x language.

Templates live in ``chat/templates/<lang>/<tone>/<name>.j2``. Every variable is
HTML-escaped (``autoescape``), so a rendered reply is safe to show in the web widget as
HTML; :class:`Rendered` also carries the plain text for terminals, tests and events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound
from markupsafe import Markup

from chatpersona.exceptions import ParameterError

__all__ = [
    "LANGUAGES",
    "MOMENTS",
    "TONES",
    "Language",
    "Rendered",
    "ResponseRenderer",
    "Tone",
    "canonical_category",
    "category_label",
    "day_month",
    "normalize_language",
    "or_list",
]

Tone = Literal["concise", "empathetic", "formal"]
Language = Literal["en", "es"]
TONES: tuple[str, ...] = get_args(Tone)
LANGUAGES: tuple[str, ...] = get_args(Language)
MOMENTS = ("greeting", "ask", "clarify", "escalate", "csat", "nps", "goodbye", "thanks")
"""Templates that are not answers to an intent category."""

_TEMPLATES = Path(__file__).parent / "templates"

_MONTHS = {
    "en": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    "es": [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
}

# Category names of both the Bitext data and the generator's contract (SHIPPING, CANCEL,
# SUBSCRIPTION), as a customer would say them.
_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "ACCOUNT": "account issue",
        "CANCELLATION_FEE": "cancellation fee",
        "CANCEL": "cancellation fee",
        "CONTACT": "request to reach our team",
        "DELIVERY": "delivery",
        "FEEDBACK": "feedback",
        "INVOICE": "invoice",
        "NEWSLETTER": "newsletter subscription",
        "ORDER": "order",
        "PAYMENT": "payment issue",
        "REFUND": "refund",
        "SHIPPING": "shipping address",
        "SHIPPING_ADDRESS": "shipping address",
        "SUBSCRIPTION": "newsletter subscription",
    },
    "es": {
        "ACCOUNT": "cuenta",
        "CANCELLATION_FEE": "penalización por cancelación",
        "CANCEL": "penalización por cancelación",
        "CONTACT": "contacto",
        "DELIVERY": "entrega",
        "FEEDBACK": "opinión",
        "INVOICE": "factura",
        "NEWSLETTER": "boletín",
        "ORDER": "pedido",
        "PAYMENT": "pago",
        "REFUND": "reembolso",
        "SHIPPING": "dirección de envío",
        "SHIPPING_ADDRESS": "dirección de envío",
        "SUBSCRIPTION": "boletín",
    },
}

# The contract's (generator's) names of three Bitext categories: events use these.
_CANONICAL = {
    "SHIPPING_ADDRESS": "SHIPPING",
    "CANCELLATION_FEE": "CANCEL",
    "NEWSLETTER": "SUBSCRIPTION",
}
# ... and their answers are the Bitext category's templates.
_TEMPLATE_OF = {
    "SHIPPING": "shipping_address",
    "CANCEL": "cancellation_fee",
    "SUBSCRIPTION": "newsletter",
}


def canonical_category(category: str) -> str:
    """The category name used in events and profiles (the generator's contract):
    ``SHIPPING_ADDRESS`` -> ``SHIPPING``, ``CANCELLATION_FEE`` -> ``CANCEL``,
    ``NEWSLETTER`` -> ``SUBSCRIPTION``; other names are upper-cased.

    Examples
    --------
    >>> canonical_category("shipping_address"), canonical_category("REFUND")
    ('SHIPPING', 'REFUND')
    """
    upper = category.strip().upper()
    return _CANONICAL.get(upper, upper)


def normalize_language(value: object) -> Language:
    """``"es"``, ``" Spanish"``, ``"ES"``, ``"español"``, ``"es-MX"`` -> ``"es"``; else ``"en"``.

    Examples
    --------
    >>> normalize_language(" Spanish"), normalize_language("EN"), normalize_language(None)
    ('es', 'en', 'en')
    """
    text = str(value or "").strip().lower()
    if text.startswith(("es", "spa", "castellano")):
        return "es"
    return "en"


def day_month(value: date | datetime | str, lang: str = "en") -> str:
    """``12 March`` / ``12 de marzo`` from a date, datetime or ISO string.

    Examples
    --------
    >>> day_month("2026-03-12T10:00:00Z"), day_month("2026-03-12", "es")
    ('12 March', '12 de marzo')
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    month = _MONTHS.get(lang, _MONTHS["en"])[value.month - 1]
    return f"{value.day} de {month}" if lang == "es" else f"{value.day} {month}"


def or_list(items: Any, lang: str = "en") -> str:
    """``a, b or c`` / ``a, b o c``.

    Examples
    --------
    >>> or_list(["refund", "invoice", "order"]), or_list(["pago", "pedido"], "es")
    ('refund, invoice or order', 'pago o pedido')
    """
    words = [str(w) for w in items]
    if len(words) <= 1:
        return "".join(words)
    conj = " o " if lang == "es" else " or "
    return ", ".join(words[:-1]) + conj + words[-1]


def category_label(category: str | None, lang: str = "en") -> str:
    """How a customer names a support category (``REFUND`` -> ``refund`` / ``reembolso``)."""
    labels = _LABELS.get(lang, _LABELS["en"])
    key = (category or "").strip().upper()
    return labels.get(key, key.replace("_", " ").lower())


@dataclass(frozen=True)
class Rendered:
    """A rendered reply: safe HTML (variables escaped) and the same words as plain text."""

    html: str
    text: str
    template: str


class ResponseRenderer:
    """Render the bot's templates.

    Parameters
    ----------
    templates_dir : path, optional
        A directory laid out like the bundled ``chat/templates`` (``<lang>/<tone>/<name>.j2``),
        to replace the bundled words.

    Examples
    --------
    >>> r = ResponseRenderer()
    >>> r.render("refund", tone="concise", lang="en", intent="track_refund").text
    'Refunds reach your account 5-7 working days after approval.'
    """

    def __init__(self, templates_dir: str | Path | None = None) -> None:
        self.templates_dir = Path(templates_dir) if templates_dir is not None else _TEMPLATES
        self._envs: dict[str, Environment] = {}

    def _env(self, lang: str) -> Environment:
        env = self._envs.get(lang)
        if env is None:
            env = Environment(
                loader=FileSystemLoader(str(self.templates_dir)),
                autoescape=True,
                undefined=StrictUndefined,
                keep_trailing_newline=False,
            )
            env.filters["day_month"] = lambda v: day_month(v, lang)
            env.filters["or_list"] = lambda v: or_list(v, lang)
            self._envs[lang] = env
        return env

    def template_name(self, name: str) -> str:
        """The template that answers ``name`` (a moment or an intent category)."""
        if name in MOMENTS:
            return name
        upper = name.upper()
        base = _TEMPLATE_OF.get(upper, name.lower())
        return base

    def render(self, template: str, /, *, tone: str, lang: str, **context: Any) -> Rendered:
        """Render a moment (``greeting``, ``clarify``, ...) or the answer to a category;
        ``context`` holds the template variables (``name``, ``intent``, ``past``, ...)."""
        if tone not in TONES:
            raise ParameterError("ResponseRenderer.render", "tone", f"one of {TONES}", tone)
        if lang not in LANGUAGES:
            raise ParameterError("ResponseRenderer.render", "lang", f"one of {LANGUAGES}", lang)
        env = self._env(lang)
        base = self.template_name(template)
        path = f"{lang}/{tone}/{base}.j2"
        try:
            tpl = env.get_template(path)
        except TemplateNotFound:
            path = f"{lang}/{tone}/generic.j2"
            tpl = env.get_template(path)
        defaults: dict[str, Any] = {
            "name": None,
            "intent": None,
            "category": None,
            "category_label": None,
            "past": None,
            "issue": None,
            "welcome_back": False,
            "vip": False,
            "plan": None,
            "options": [],
        }
        defaults.update(context)
        html = " ".join(tpl.render(**defaults).split())
        text = " ".join(Markup(html).unescape().split())
        return Rendered(html=html, text=text, template=path)
