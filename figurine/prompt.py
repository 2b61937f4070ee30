"""Prompt stage: the request's words -> SDXL prompts for the figure and each accessory.

    from figurine.prompt import build_prompts
    p = build_prompts("Ada Lovelace", tagline="Analytical Engine Pilot",
                      accessories=["punch cards", "brass gear"])
    print(p.figure)
    print(p.accessory("punch cards"))   # (prompt, negative)

The figure prompt follows the structure the action-figure trend uses, most important words
first because SDXL's CLIP encoders read only 77 tokens (the rest is cut off):

    subject and scale  "1/12 scale 6-inch action figure of a person dressed as an Analytical
                        Engine Pilot, wearing <outfit>"
    style              "premium collectible action figure"
    material           "injection-moulded plastic, articulated joints, visible joint seams"
    framing            "full body, standing, centred"
    backdrop           figurine.matte's BACKDROP_PROMPT (the matte keys out exactly that)
    photo              "studio product photo"
    extra              the user's own extra words, last

The person's name is never written into a prompt: SDXL cannot spell, and a name invites
lettering. figurine draws the name on the packaging itself. The tagline (a profession or
role) decides what the figure is dressed as. Accessories are separate, smaller generations
with their own prompt, so the figure prompt does not ask for props it would have to hold.

User text is cleaned first: control and invisible format characters removed, whitespace
collapsed, stray commas trimmed.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field

from figurine.errors import InputError
from figurine.matte import BACKDROP_PROMPT

log = logging.getLogger(__name__)

BACKDROP = BACKDROP_PROMPT  # the phrase the matte stage expects; kept in one place (matte.py)
DEFAULT_STYLE = "premium collectible action figure"
DEFAULT_NEGATIVE = (
    "photo of a real person, realistic skin, blurry, lowres, deformed, extra limbs, "
    "extra fingers, text, watermark, logo, packaging, box, cluttered background"
)
SCALE = "1/12 scale 6-inch action figure"
MATERIAL = "injection-moulded plastic, articulated joints, visible joint seams"
FRAMING = "full body, standing, centred"
LIGHT = "studio product photo"  # the backdrop phrase already asks for soft, even light
ACCESSORY_MATERIAL = "small injection-moulded plastic toy prop, same plastic style"
ACCESSORY_FRAMING = "centred, product photo"
ACCESSORY_NEGATIVE = "person, figure, hands, multiple objects, cropped"

CLIP_MAX_TOKENS = 77  # including the start and end tokens
MAX_FIELD_CHARS = 300


@dataclass(frozen=True)
class Prompts:
    """What the generation stage needs. `accessories` holds the cleaned accessory texts."""

    figure: str
    figure_negative: str
    accessories: tuple[str, ...] = ()
    backdrop: str = BACKDROP
    accessory_negative: str = field(default="", repr=False)

    def accessory(self, text: str) -> tuple[str, str]:
        """(prompt, negative) for one accessory, generated alone on the same backdrop."""
        text = clean_text(text, "accessory")
        if not text:
            raise InputError("an accessory needs a description, e.g. --accessory \"brass gear\"")
        prompt = f"a single toy accessory: {text}, {ACCESSORY_MATERIAL}, {self.backdrop}, {ACCESSORY_FRAMING}"
        warn_if_long(prompt, label=f"accessory prompt '{text}'")
        return prompt, self.accessory_negative

    def to_dict(self) -> dict:
        return {
            "figure": self.figure,
            "negative": self.figure_negative,
            "accessories": {a: self.accessory(a)[0] for a in self.accessories},
            "accessory_negative": self.accessory_negative,
        }


def build_prompts(
    name: str,
    tagline: str = "",
    outfit: str = "",
    accessories=(),
    style: str = DEFAULT_STYLE,
    extra: str = "",
    backdrop: str = BACKDROP,
    negative: str = DEFAULT_NEGATIVE,
    tokenizer=None,
) -> Prompts:
    """Build the figure prompt, its negative, and the accessory prompt maker.

    `name` is checked but deliberately not used in any prompt (see the module notes).
    `tokenizer`, when given (a CLIP tokenizer), makes the 77-token warning exact.
    """
    # 1. Clean every piece of user text.
    if not clean_text(name, "name"):
        raise InputError("the figure needs a name, e.g. --name \"Ada Lovelace\"")
    tagline = clean_text(tagline, "tagline")
    outfit = clean_text(outfit, "outfit")
    style = clean_text(style, "style")
    extra = clean_text(extra, "extra")
    backdrop = clean_text(backdrop, "backdrop") or BACKDROP
    negative = clean_text(negative, "negative prompt")
    items = tuple(a for a in (clean_text(a, "accessory") for a in accessories) if a)

    # 2. The figure prompt, most important words first.
    subject = f"{SCALE} of a person"
    if tagline:
        subject += f" dressed as {_article(tagline)} {tagline}"
    if outfit:
        subject += f", wearing {outfit}"
    parts = [subject, style, MATERIAL, FRAMING, backdrop, LIGHT, extra]
    figure = ", ".join(p for p in parts if p)
    warn_if_long(figure, tokenizer, label="figure prompt")

    # 3. Negatives: the user's (or the default) plus what an accessory shot must avoid.
    accessory_negative = ", ".join(p for p in (ACCESSORY_NEGATIVE, negative) if p)
    return Prompts(figure, negative, items, backdrop, accessory_negative)


def clean_text(text, what: str = "text") -> str:
    """Drop control/format/unassigned characters, collapse whitespace, trim stray commas."""
    if text is None:
        return ""
    if not isinstance(text, str):
        raise InputError(f"{what} must be text, got {type(text).__name__}")
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if ch in "\t\n\r\v\f" else ch for ch in text)
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))
    text = re.sub(r"\s+", " ", text).strip(" ,;")
    if len(text) > MAX_FIELD_CHARS:
        raise InputError(f"{what} is too long ({len(text)} characters; at most {MAX_FIELD_CHARS})")
    return text


def estimate_tokens(text: str, tokenizer=None) -> int:
    """CLIP tokens in text, start and end tokens included.

    With a tokenizer the count is exact. Without one it is a slight overestimate: CLIP splits
    text into words, single digits and punctuation runs; common words are one token, and long
    or rare words split into pieces (counted here as one more token per 5 letters past 10).
    """
    if tokenizer is not None:
        return len(tokenizer(text, truncation=False)["input_ids"])
    count = 2
    for piece in re.findall(r"[^\W\d_]+|\d|[^\w\s]+", text.lower()):
        count += 1 + max(0, (len(piece) - 10 + 4) // 5) if piece.isalpha() else 1
    return count


def warn_if_long(text: str, tokenizer=None, label: str = "prompt", limit: int = CLIP_MAX_TOKENS) -> int:
    """Log a warning when text likely runs past CLIP's window; returns the token estimate."""
    n = estimate_tokens(text, tokenizer)
    if n > limit:
        log.warning("%s is about %d CLIP tokens; SDXL reads only the first %d, so its end is cut off: %s",
                    label, n, limit, text)
    return n


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
