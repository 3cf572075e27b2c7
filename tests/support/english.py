"""Whether a model's answer is real English, without fixing its wording (outputs differ between backends): most
of its words are common English words, and a factual answer names the fact."""

from __future__ import annotations

import re

# Common English words, plus those a question about France's capital and its answer use.
_COMMON_WORDS = """
a about above after again all also am an and any are as at be because been before being below between both but by
can city country could did do does doing down during each east few for from further had has have having he her here
hers him his how i if in into is it its itself just known large largest located many me more most much my
no nor north not now of off on once one only or other our out over own people same she should so some south such
than that the their them then there these they this those through to too under until up very was we well were west
what when where which while who whom why will with would you your
capital france french paris europe european main official seat government nation famous home called name named
"""
COMMON = frozenset(_COMMON_WORDS.split())


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def assert_english_answer(text: str, fact: str, *, share: float = 0.75) -> None:
    """At least three words, ``share`` of them common English, one of them ``fact``."""
    found = words(text)
    assert len(found) >= 3, text
    assert sum(word in COMMON for word in found) >= share * len(found), text
    assert fact.lower() in found, text
