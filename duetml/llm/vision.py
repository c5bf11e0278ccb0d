"""Guessing from a model's name whether it accepts images, for servers that cannot tell us.

OpenAI's /v1/models lists no capabilities, and neither do LM Studio, vLLM or llama.cpp. Known
families answer True (or False for known text-only ones); everything else is None (unknown),
so the UI can say "may not see images" instead of a wrong yes or no.
"""

from __future__ import annotations

import re

_DATE = r"(-\d{4}-\d{2}-\d{2})?"

# Checked first: text-only members of families that otherwise see images (o1-mini, gemma3:1b).
_TEXT_ONLY = [
    re.compile(p)
    for p in (
        r"^o1-(mini|preview)",
        r"^o3-mini",
        r"^gpt-3\.5",
        r"^gpt-4(-\d{4})?$",
        r"^gpt-4-(32k|0314|0613)",
        r"^(text-|davinci|babbage|whisper|tts-|dall-e)",
        r"embed",
        r"^gemma-?3[-:._]?1b",
    )
]

_VISION = [
    re.compile(p)
    for p in (
        r"^(chatgpt-)?gpt-4o",
        r"^gpt-4\.[15]",
        r"^gpt-4-(turbo|vision)",
        r"^gpt-5",
        rf"^o1(-pro)?{_DATE}$",
        rf"^o3(-pro)?{_DATE}$",
        r"^o4-mini",
        r"llava",
        r"qwen[\d.]*-?vl",
        r"qwen-vl",
        r"llama-?3\.2-?vision",
        r"llama-?4",
        r"gemma-?3",
        r"pixtral",
        r"mistral-small-?3\.[12]",
        r"minicpm-?v",
        r"moondream",
        r"internvl",
        r"smolvlm",
        r"idefics",
        r"molmo",
        r"vision",
        r"(^|[-_.])vl([-_.:]|$)",
    )
]


def guess_vision(model: str) -> bool | None:
    """True/False for model families known to see (or not see) images, else None."""
    name = model.strip().lower()
    name = name.removeprefix("ft:")  # fine-tunes are "ft:BASE:org:..."; the base decides
    name = name.rsplit("/", 1)[-1]  # "hf.co/org/Model-VL-GGUF" or "library/llava"
    if any(p.search(name) for p in _TEXT_ONLY):
        return False
    if any(p.search(name) for p in _VISION):
        return True
    return None
