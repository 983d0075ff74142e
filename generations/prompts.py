"""What a prompt may hold: text a person wrote, within the length Flow takes.

Shared by the scene form and the storyboard CSV import, so both refuse the same things with
the same words. Control characters (a NUL, an escape sequence, a form feed) are invisible on
the page, can corrupt logs and terminals, and say nothing to the model; line breaks and tabs
are the only ones a person means to type.
"""

from __future__ import annotations

import unicodedata

MAX_PROMPT_CHARACTERS = 2000
_ALLOWED_CONTROLS = frozenset("\n\t")


def normalise_line_breaks(text: str) -> str:
    """Browsers send a textarea's line breaks as CR LF, spreadsheets sometimes as CR: one LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def prompt_problem(prompt: str) -> str:
    """What is wrong with a (line-break-normalised) prompt, as the end of a sentence starting
    "the prompt "; "" when nothing is."""
    for index, char in enumerate(prompt, start=1):
        if char not in _ALLOWED_CONTROLS and unicodedata.category(char) == "Cc":
            return (
                f"contains an invisible control character (U+{ord(char):04X}) at character "
                f"{index}; remove it (only line breaks and tabs may be in a prompt)"
            )
    if len(prompt) > MAX_PROMPT_CHARACTERS:
        return (
            f"is {len(prompt)} characters long; Flow takes at most {MAX_PROMPT_CHARACTERS}, "
            "so shorten it"
        )
    return ""
