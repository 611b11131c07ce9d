"""Templates: every category x tone x language renders; variables are HTML-escaped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatpersona.chat import LANGUAGES, TONES, ResponseRenderer, day_month, normalize_language
from chatpersona.chat.responses import MOMENTS, category_label, or_list
from chatpersona.exceptions import ParameterError

CATEGORIES = [
    "ACCOUNT", "CANCELLATION_FEE", "CONTACT", "DELIVERY", "FEEDBACK", "INVOICE",
    "NEWSLETTER", "ORDER", "PAYMENT", "REFUND", "SHIPPING_ADDRESS",
    "SHIPPING", "CANCEL", "SUBSCRIPTION",
]  # fmt: skip


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("tone", TONES)
@pytest.mark.parametrize("name", [*CATEGORIES, *MOMENTS])
def test_every_template_renders(name: str, tone: str, lang: str) -> None:
    out = ResponseRenderer().render(
        name,
        tone=tone,
        lang=lang,
        name="Ana",
        intent="x",
        options=["a", "b"],
        issue={"label": "refund", "date": "2026-03-12"},
        past={"label": "refund", "date": "2026-03-12"},
    )
    assert out.text and "{{" not in out.text and "{%" not in out.text
    assert "generic" not in out.template  # every category has its own words
    assert out.template.startswith(f"{lang}/{tone}/")


def test_unknown_category_uses_generic_answer() -> None:
    out = ResponseRenderer().render("WARRANTY", tone="concise", lang="en")
    assert (out.text, out.template) == ("I can help with that.", "en/concise/generic.j2")


def test_variables_are_escaped_in_html_only() -> None:
    out = ResponseRenderer().render(
        "goodbye", tone="concise", lang="en", name='<img src=x onerror="alert(1)">'
    )
    assert out.html == "Thanks, &lt;img src=x onerror=&#34;alert(1)&#34;&gt;. Bye!"
    assert out.text == 'Thanks, <img src=x onerror="alert(1)">. Bye!'


def test_bad_tone_and_language() -> None:
    with pytest.raises(ParameterError, match=r"The 'tone' parameter of ResponseRenderer\.render"):
        ResponseRenderer().render("greeting", tone="rude", lang="en")
    with pytest.raises(ParameterError, match=r"Got 'fr' instead\."):
        ResponseRenderer().render("greeting", tone="formal", lang="fr")


def test_labels_dates_and_lists() -> None:
    assert category_label("REFUND") == "refund"
    assert category_label("refund", "es") == "reembolso"
    assert category_label("WARRANTY_CLAIM") == "warranty claim"
    assert day_month("2026-12-01T23:59:59Z", "en") == "1 December"
    assert day_month("2026-08-31", "es") == "31 de agosto"
    assert or_list(["a"]) == "a"
    assert or_list(["a", "b", "c"], "es") == "a, b o c"


@pytest.mark.parametrize(
    ("raw", "lang"),
    [("es", "es"), (" Spanish", "es"), ("ES", "es"), ("español", "es"), ("es-MX", "es"),
     ("EN", "en"), ("english", "en"), ("", "en"), (None, "en"), ("fr", "en")],
)  # fmt: skip
def test_normalize_language(raw: object, lang: str) -> None:
    assert normalize_language(raw) == lang


@given(st.text(max_size=30))
def test_normalize_language_is_total(raw: str) -> None:
    assert normalize_language(raw) in LANGUAGES
