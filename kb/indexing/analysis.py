"""Text analysis every keyword engine shares: NFKC normalisation that keeps offsets into the original text.

The engines index and search the NFKC form of text (``ｒｅｆｕｎｄ``, ``ﬁle`` and ``①`` are plain words and
digits), and report term offsets into the text as given, so snippets highlight the right span.
"""

from __future__ import annotations

import unicodedata


def nfkc_with_offsets(text: str) -> tuple[str, list[int] | None, list[int] | None]:
    """NFKC-normalise text; for each character of the result, where its source starts and ends in text.

    Normalised a segment at a time (a character and the combining marks after it), so every character of
    the result comes from one segment.

    Args:
        text: the text as given.

    Returns:
        (normal, starts, ends): starts[i] and ends[i] are the bounds in text of the segment that character i of
        normal comes from; (text, None, None) when text is already NFKC.
    """
    if unicodedata.is_normalized("NFKC", text):
        return text, None, None
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    begin = 0
    for position in range(1, len(text) + 1):
        if position < len(text) and unicodedata.combining(text[position]):
            continue
        piece = unicodedata.normalize("NFKC", text[begin:position])
        pieces.append(piece)
        starts.extend([begin] * len(piece))
        ends.extend([position] * len(piece))
        begin = position
    return "".join(pieces), starts, ends
