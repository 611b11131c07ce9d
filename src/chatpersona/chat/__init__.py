"""chatpersona.chat: the reference support chatbot (intent model, templates, the three
moments of a conversation) and its web widget and dashboard (``chat/web``)."""

from chatpersona.chat.bot import (
    OPEN_ISSUE_KEYS,
    Bot,
    BotTurn,
    ChatDecision,
    Conversation,
    ProfileContext,
    default_decision,
    make_event,
    open_issues_from_events,
)
from chatpersona.chat.demo import apply_open_issues, pick_demo_users, read_events_jsonl
from chatpersona.chat.intents import (
    DEFAULT_THRESHOLD,
    IntentDataset,
    IntentModel,
    IntentPrediction,
    load_dataset,
    load_or_train,
    train_test_split,
)
from chatpersona.chat.responses import (
    LANGUAGES,
    TONES,
    Rendered,
    ResponseRenderer,
    category_label,
    day_month,
    normalize_language,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "LANGUAGES",
    "OPEN_ISSUE_KEYS",
    "TONES",
    "Bot",
    "BotTurn",
    "ChatDecision",
    "Conversation",
    "IntentDataset",
    "IntentModel",
    "IntentPrediction",
    "ProfileContext",
    "Rendered",
    "ResponseRenderer",
    "apply_open_issues",
    "category_label",
    "day_month",
    "default_decision",
    "load_dataset",
    "load_or_train",
    "make_event",
    "normalize_language",
    "open_issues_from_events",
    "pick_demo_users",
    "read_events_jsonl",
    "train_test_split",
]
