"""The ledger's topics under the configured prefix (``Settings.topic_prefix``).

The naming itself is :mod:`ledger.topics`; this module only ties it to the
application's settings. ``Topics`` and ``topic_names`` are re-exported for
scripts that build names from a prefix they hold (bench).
"""

from __future__ import annotations

from claw_ledger.config import Settings
from ledger.topics import Topics, topic_names

__all__ = ["Topics", "topic_names", "topics_for"]


def topics_for(settings: Settings) -> Topics:
    """The ingress, verified and quarantine topics of ``settings.topic_prefix``."""
    return topic_names(settings.topic_prefix)
