"""Prompt stage: what SDXL is asked for, and what it is never asked for."""

from __future__ import annotations

import logging
import unicodedata

import pytest

from figurine.errors import InputError
from figurine.matte import BACKDROP_PROMPT
from figurine.prompt import build_prompts, clean_text, estimate_tokens, warn_if_long

NAME = "Ada Lovelace"
TAGLINE = "Analytical Engine Pilot"
ACCESSORIES = ["punch cards", "brass gear"]


@pytest.fixture
def prompts():
    return build_prompts(NAME, tagline=TAGLINE, outfit="a Victorian dress", accessories=ACCESSORIES)


def _all_texts(p) -> list[str]:
    texts = [p.figure, p.figure_negative]
    for a in p.accessories:
        texts.extend(p.accessory(a))
    return texts


def test_the_name_is_never_in_any_prompt(prompts):
    for text in _all_texts(prompts):
        for word in NAME.split():
            assert word.lower() not in text.lower()


def test_tagline_dresses_the_figure_and_accessories_get_their_own_prompts(prompts):
    assert f"dressed as an {TAGLINE}" in prompts.figure
    assert "wearing a Victorian dress" in prompts.figure
    assert prompts.accessories == tuple(ACCESSORIES)
    for a in ACCESSORIES:
        prompt, negative = prompts.accessory(a)
        assert prompt.startswith(f"a single toy accessory: {a},")
        assert "person" in negative
    # The figure is generated alone: its props come from the accessory generations.
    assert not any(a in prompts.figure for a in ACCESSORIES)


def test_scale_plastic_and_the_matte_backdrop_are_asked_for(prompts):
    fig = prompts.figure
    assert fig.startswith("1/12 scale 6-inch action figure")
    for words in ("injection-moulded plastic", "articulated joints", "full body", "studio product photo"):
        assert words in fig
    assert BACKDROP_PROMPT in fig
    for a in ACCESSORIES:
        prompt, _ = prompts.accessory(a)
        assert "injection-moulded plastic" in prompt and BACKDROP_PROMPT in prompt
    for word in ("text", "watermark", "packaging"):
        assert word in prompts.figure_negative


def test_control_characters_are_stripped_and_whitespace_collapsed():
    dirty = "Analytical\x00 Engine\x1b[31m \u200bPilot\r\n\t  "
    p = build_prompts(NAME, tagline=dirty, accessories=["punch\x07 cards\n", "  \x0c  "])
    for text in _all_texts(p):
        assert not any(unicodedata.category(ch).startswith("C") for ch in text)
        assert "  " not in text
    assert "dressed as an Analytical Engine[31m Pilot" in p.figure
    assert p.accessories == ("punch cards",)  # the blank one is dropped
    assert clean_text("  gear ,  ") == "gear"


def test_user_style_extra_and_negative_are_used():
    p = build_prompts(NAME, style="retro 1980s toy", extra="bright colours", negative="blurry")
    assert "retro 1980s toy" in p.figure and p.figure.endswith("bright colours")
    assert p.figure_negative == "blurry"
    assert p.accessory("gear")[1].endswith("blurry")


def test_important_words_come_first_and_the_default_prompt_fits_clip():
    p = build_prompts(NAME, tagline=TAGLINE)
    assert estimate_tokens(p.figure) <= 77
    fig = p.figure
    assert fig.index("1/12 scale") < fig.index(TAGLINE) < fig.index("plastic") < fig.index(BACKDROP_PROMPT)


def test_a_long_prompt_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="figurine.prompt"):
        build_prompts(NAME, tagline=TAGLINE)
        assert not caplog.records
        build_prompts(NAME, tagline=TAGLINE, extra="highly detailed, " * 8)
    assert any("77" in r.getMessage() for r in caplog.records)


def test_token_count_uses_a_real_tokenizer_when_given():
    from transformers import CLIPTokenizer

    symbols = [chr(b) for b in range(33, 127)] + [chr(b) for b in range(161, 173)] + [chr(b) for b in range(174, 256)]
    symbols += [chr(256 + i) for i in range(256 - len(symbols))]  # the 256 byte symbols
    vocab = {}
    for s in symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]:
        vocab.setdefault(s, len(vocab))
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "vocab.json").write_text(json.dumps(vocab))
        (Path(d) / "merges.txt").write_text("#version: 0.2\n")
        tok = CLIPTokenizer(str(Path(d) / "vocab.json"), str(Path(d) / "merges.txt"), model_max_length=77)
        # No merges: every character of "ab cd" is one token, plus start and end.
        assert estimate_tokens("ab cd", tokenizer=tok) == 6
        assert warn_if_long("x" * 100, tokenizer=tok) == 102


def test_bad_text_is_an_input_error():
    with pytest.raises(InputError):
        build_prompts("  \x00 ")
    with pytest.raises(InputError):
        build_prompts(NAME, tagline="x" * 1000)
    with pytest.raises(InputError):
        build_prompts(NAME).accessory("\x00")
