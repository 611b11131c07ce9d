"""The five latent customer segments that drive the generator's data.

Each :class:`SegmentProfile` holds the hidden behaviour of one segment: demographics, how
often its users contact support and about what, on which channel and device, at what time,
and how satisfied they end up. The segmentation stage should recover these segments from the
generated tables; the decision simulator reuses them as its hidden ground truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "CATEGORIES",
    "CHANNELS",
    "COUNTRIES",
    "DEVICES",
    "EVENT_TYPES",
    "GENDERS",
    "PLANS",
    "REGIONS",
    "SEGMENTS",
    "SEGMENT_NAMES",
    "SegmentProfile",
    "get_segment",
]

CATEGORIES: tuple[str, ...] = (
    "ACCOUNT",
    "ORDER",
    "REFUND",
    "INVOICE",
    "PAYMENT",
    "SHIPPING",
    "DELIVERY",
    "CANCEL",
    "CONTACT",
    "FEEDBACK",
    "SUBSCRIPTION",
)
CHANNELS: tuple[str, ...] = ("web", "mobile_app", "email", "whatsapp", "phone")
DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet")
EVENT_TYPES: tuple[str, ...] = ("chat_started", "message", "chat_ended", "feedback")
REGIONS: tuple[str, ...] = ("North", "South", "East", "West", "Central")
#: Country codes; the first four speak English, the rest Spanish.
COUNTRIES: tuple[str, ...] = ("US", "UK", "CA", "IE", "ES", "MX", "AR", "CO")
PLANS: tuple[str, ...] = ("basic", "pro", "premium")
GENDERS: tuple[str, ...] = ("female", "male", "non_binary")


def _frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class SegmentProfile:
    """Hidden behaviour of one latent segment.

    Weights are relative (they need not sum to 1); missing keys get weight 0 except in
    ``category_weights``, where every category keeps a small floor so that no segment is
    perfectly pure.

    Attributes
    ----------
    name, description:
        Machine name (written to ``truth.csv``) and a human sentence.
    share:
        Expected fraction of users in this segment.
    age_mean, age_sd:
        Normal distribution of ages (clipped to 18..90).
    chat_rate:
        Poisson mean of chats beyond the first one, over the whole window (before scaling by
        ``events_per_user``).
    message_rate:
        Poisson mean of user messages beyond the first one in a chat (capped at 5 extra).
    category_weights, intent_weights:
        Intent-category mix; ``intent_weights`` multiplies single intents inside a category.
    channel_weights, device_weights:
        Per-chat channel and device mix.
    hour_mean, hour_sd:
        Chat start hour (UTC), normal and wrapped around midnight.
    weekend_share:
        Probability that a chat happens on Saturday or Sunday.
    csat_probs:
        Probabilities of CSAT 1..5 for a resolved chat (unresolved chats score lower).
    nps_shift:
        Added to the CSAT-driven NPS before clipping to 0..10.
    feedback_rate, nps_rate:
        Probability that a chat gets a feedback event, and that the feedback carries an NPS.
    resolution_rate:
        Probability that a chat ends resolved.
    handle_time_s:
        Mean chat handling time in seconds (log-normal).
    region_weights, country_weights, gender_weights, plan_weights:
        Demographic mixes.
    vip_rate, newsletter_rate:
        Probabilities of the two flags.
    spend_median:
        Median monthly spend (currency units).
    recent_signup:
        Users sign up inside the event window (new customers) rather than before it.
    """

    name: str
    description: str
    share: float
    age_mean: float
    age_sd: float
    chat_rate: float
    message_rate: float
    category_weights: Mapping[str, float]
    channel_weights: Mapping[str, float]
    device_weights: Mapping[str, float]
    hour_mean: float
    hour_sd: float
    weekend_share: float
    csat_probs: tuple[float, float, float, float, float]
    nps_shift: float
    feedback_rate: float
    nps_rate: float
    resolution_rate: float
    handle_time_s: float
    region_weights: Mapping[str, float]
    country_weights: Mapping[str, float]
    gender_weights: Mapping[str, float]
    plan_weights: Mapping[str, float]
    vip_rate: float
    newsletter_rate: float
    spend_median: float
    recent_signup: bool = False
    intent_weights: Mapping[str, float] = field(default_factory=lambda: _frozen({}))


SEGMENTS: tuple[SegmentProfile, ...] = (
    SegmentProfile(
        name="billing_focused",
        description="Middle-aged desktop users who write on weekday office hours about "
        "invoices, payments and refunds; frequent contacts, middling CSAT.",
        share=0.24,
        age_mean=46,
        age_sd=7,
        chat_rate=3.2,
        message_rate=1.2,
        category_weights=_frozen(
            {"INVOICE": 35, "PAYMENT": 30, "REFUND": 25, "ACCOUNT": 4, "ORDER": 3, "CONTACT": 3}
        ),
        intent_weights=_frozen({"payment_issue": 2.0, "get_refund": 1.5}),
        channel_weights=_frozen({"web": 72, "email": 20, "phone": 6, "whatsapp": 2}),
        device_weights=_frozen({"desktop": 88, "mobile": 7, "tablet": 5}),
        hour_mean=11,
        hour_sd=1.6,
        weekend_share=0.05,
        csat_probs=(0.1, 0.2, 0.35, 0.25, 0.1),
        nps_shift=0.0,
        feedback_rate=0.75,
        nps_rate=0.35,
        resolution_rate=0.74,
        handle_time_s=600,
        region_weights=_frozen({"East": 45, "Central": 25, "North": 12, "South": 9, "West": 9}),
        country_weights=_frozen(
            {"US": 45, "CA": 25, "UK": 10, "IE": 4, "ES": 4, "MX": 4, "AR": 4, "CO": 4}
        ),
        gender_weights=_frozen({"female": 50, "male": 48, "non_binary": 2}),
        plan_weights=_frozen({"basic": 30, "pro": 50, "premium": 20}),
        vip_rate=0.12,
        newsletter_rate=0.4,
        spend_median=120,
    ),
    SegmentProfile(
        name="mobile_shopper",
        description="Young shoppers on the mobile app and WhatsApp in the evening and at "
        "weekends, asking about orders, delivery and shipping; satisfied.",
        share=0.26,
        age_mean=25,
        age_sd=4,
        chat_rate=1.3,
        message_rate=0.8,
        category_weights=_frozen(
            {"ORDER": 40, "DELIVERY": 28, "SHIPPING": 20, "REFUND": 4, "PAYMENT": 2}
        ),
        channel_weights=_frozen({"mobile_app": 76, "whatsapp": 19, "web": 4, "email": 1}),
        device_weights=_frozen({"mobile": 93, "tablet": 6, "desktop": 1}),
        hour_mean=20.5,
        hour_sd=1.4,
        weekend_share=0.55,
        csat_probs=(0.03, 0.07, 0.2, 0.4, 0.3),
        nps_shift=0.5,
        feedback_rate=0.55,
        nps_rate=0.25,
        resolution_rate=0.87,
        handle_time_s=240,
        region_weights=_frozen({"West": 45, "South": 30, "Central": 9, "North": 8, "East": 8}),
        country_weights=_frozen(
            {"MX": 40, "CO": 20, "US": 15, "AR": 10, "ES": 5, "UK": 4, "CA": 3, "IE": 3}
        ),
        gender_weights=_frozen({"female": 55, "male": 42, "non_binary": 3}),
        plan_weights=_frozen({"basic": 60, "pro": 35, "premium": 5}),
        vip_rate=0.04,
        newsletter_rate=0.65,
        spend_median=45,
    ),
    SegmentProfile(
        name="loyal_premium",
        description="Older premium and VIP customers who rarely write, by email or phone in "
        "the morning, about their account and subscription; very satisfied promoters.",
        share=0.16,
        age_mean=60,
        age_sd=6,
        chat_rate=0.45,
        message_rate=0.5,
        category_weights=_frozen(
            {
                "SUBSCRIPTION": 32,
                "FEEDBACK": 25,
                "CONTACT": 15,
                "ACCOUNT": 10,
                "ORDER": 6,
                "DELIVERY": 4,
            }
        ),
        intent_weights=_frozen({"review": 9.0, "complaint": 1.0}),
        channel_weights=_frozen({"email": 62, "phone": 30, "web": 7, "whatsapp": 1}),
        device_weights=_frozen({"desktop": 72, "tablet": 26, "mobile": 2}),
        hour_mean=8.5,
        hour_sd=1.2,
        weekend_share=0.15,
        csat_probs=(0.01, 0.02, 0.07, 0.3, 0.6),
        nps_shift=1.0,
        feedback_rate=0.85,
        nps_rate=0.6,
        resolution_rate=0.95,
        handle_time_s=300,
        region_weights=_frozen({"North": 55, "East": 18, "Central": 14, "West": 9, "South": 4}),
        country_weights=_frozen(
            {"UK": 45, "IE": 25, "US": 12, "CA": 8, "ES": 5, "MX": 2, "AR": 2, "CO": 1}
        ),
        gender_weights=_frozen({"female": 48, "male": 50, "non_binary": 2}),
        plan_weights=_frozen({"premium": 72, "pro": 24, "basic": 4}),
        vip_rate=0.75,
        newsletter_rate=0.8,
        spend_median=420,
    ),
    SegmentProfile(
        name="at_risk_complainer",
        description="Frustrated customers calling and messaging late at night, many contacts "
        "with complaints, cancellations, refunds and demands for a human; low CSAT, detractors, "
        "often unresolved.",
        share=0.14,
        age_mean=37,
        age_sd=7,
        chat_rate=3.6,
        message_rate=2.0,
        category_weights=_frozen(
            {
                "FEEDBACK": 25,
                "CANCEL": 18,
                "CONTACT": 18,
                "REFUND": 17,
                "PAYMENT": 10,
                "INVOICE": 5,
                "ORDER": 4,
            }
        ),
        intent_weights=_frozen({"complaint": 19.0, "review": 1.0, "contact_human_agent": 4.0}),
        channel_weights=_frozen({"phone": 56, "whatsapp": 38, "web": 5, "email": 1}),
        device_weights=_frozen({"mobile": 76, "desktop": 21, "tablet": 3}),
        hour_mean=1.5,
        hour_sd=1.5,
        weekend_share=0.35,
        csat_probs=(0.4, 0.3, 0.18, 0.08, 0.04),
        nps_shift=-2.0,
        feedback_rate=0.8,
        nps_rate=0.5,
        resolution_rate=0.45,
        handle_time_s=780,
        region_weights=_frozen({"South": 45, "Central": 30, "East": 10, "West": 10, "North": 5}),
        country_weights=_frozen(
            {"ES": 40, "AR": 20, "US": 15, "MX": 10, "UK": 5, "CA": 4, "CO": 4, "IE": 2}
        ),
        gender_weights=_frozen({"female": 45, "male": 52, "non_binary": 3}),
        plan_weights=_frozen({"basic": 50, "pro": 40, "premium": 10}),
        vip_rate=0.08,
        newsletter_rate=0.15,
        spend_median=80,
    ),
    SegmentProfile(
        name="new_explorer",
        description="New customers who signed up during the window, on web and tablets in the "
        "afternoon, asking how to create an account, place an order or pay; one chat or two.",
        share=0.20,
        age_mean=31,
        age_sd=5,
        chat_rate=0.15,
        message_rate=0.7,
        category_weights=_frozen(
            {
                "ACCOUNT": 55,
                "ORDER": 18,
                "PAYMENT": 15,
                "DELIVERY": 6,
            }
        ),
        intent_weights=_frozen(
            {
                "create_account": 4.0,
                "registration_problems": 4.0,
                "check_payment_methods": 4.0,
                "place_order": 4.0,
            }
        ),
        channel_weights=_frozen({"web": 82, "mobile_app": 8, "email": 8, "whatsapp": 2}),
        device_weights=_frozen({"tablet": 78, "desktop": 12, "mobile": 10}),
        hour_mean=15.5,
        hour_sd=1.4,
        weekend_share=0.5,
        csat_probs=(0.05, 0.1, 0.25, 0.35, 0.25),
        nps_shift=0.0,
        feedback_rate=0.5,
        nps_rate=0.2,
        resolution_rate=0.8,
        handle_time_s=200,
        region_weights=_frozen({"Central": 48, "East": 18, "North": 14, "South": 10, "West": 10}),
        country_weights=_frozen(
            {"US": 30, "CA": 20, "UK": 15, "ES": 10, "MX": 10, "IE": 5, "AR": 5, "CO": 5}
        ),
        gender_weights=_frozen({"female": 50, "male": 47, "non_binary": 3}),
        plan_weights=_frozen({"basic": 82, "pro": 16, "premium": 2}),
        vip_rate=0.02,
        newsletter_rate=0.5,
        spend_median=25,
        recent_signup=True,
    ),
)

SEGMENT_NAMES: tuple[str, ...] = tuple(s.name for s in SEGMENTS)


def get_segment(name: str) -> SegmentProfile:
    """Return the latent segment called ``name``.

    Examples
    --------
    >>> get_segment("mobile_shopper").channel_weights["mobile_app"]
    76
    """
    for segment in SEGMENTS:
        if segment.name == name:
            return segment
    from chatpersona.exceptions import NotFoundError

    raise NotFoundError(
        f"Unknown segment {name!r}; the generator's segments are {', '.join(SEGMENT_NAMES)}.",
        value=name,
    )
