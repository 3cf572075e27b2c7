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


def dictionary_share(text: str) -> float:
    """The share of a text's words that are whole words of CLIP's 49k-token English vocabulary (installed with
    open_clip): high for real sentences, low for the byte soup a random-weight model writes."""
    import json

    from nodeforge.nodes.models.checkpoints.bundled import clip_vocabulary

    vocabulary = {token.removesuffix("</w>") for token in json.loads(clip_vocabulary()[0]) if token.endswith("</w>")}
    found = words(text)
    return sum(word in vocabulary for word in found) / max(1, len(found))
