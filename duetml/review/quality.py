"""Image quality (kind "quality"): photos too dark, overexposed, blurry, nearly blank, of an
odd size or shape, or grey among colour photos, as CleanVision lists them; one finding per
photo, details.reason in QUALITY_REASONS.

The measures come from pixels.py (one small decode per photo content, cached). CleanVision
itself is not a dependency: it pulls pandas, matplotlib and tabulate, decodes every photo at
full size on each run, and its fixed thresholds have a known false alarm (a uniform
background reads as blurry), which product photos on white would hit throughout. Here
blur is measured on the sharpest tiles of the photo (pixels.py), and each threshold was set
on the real photos of the Caltech subset and the demo (5,333 photos) so that none of them
crosses it; a photo made dark, blank or blurry on purpose does:

- dark: even the brightest 1% of the pixels is below DARK_P99 (of 255);
- overexposed: even the darkest 1% is above OVEREXPOSED_P01, and the mean above
  OVEREXPOSED_MEAN (a white garment on white keeps some shadow, a washed-out photo none);
- blurry: the sharpest tiles' Laplacian variance is below BLURRY_SHARPNESS;
- low_information: the grey-level histogram holds less than LOW_ENTROPY bits (a blank or
  nearly uniform picture);
- odd_size: the shorter side is below ODD_SIZE_MIN pixels, or below the project's median
  shorter side divided by ODD_SIZE_FACTOR;
- odd_aspect: one side is more than ODD_ASPECT times the other;
- grayscale: no colour at all (GREY_COLOUR) while at most GREY_MAX_SHARE of the project's
  photos are grey (in a project of grey photos it is normal, not a problem).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from duetml.review.types import Finding, Suggestion, make_finding

if TYPE_CHECKING:
    from duetml.review.data import ReviewData

# Measured on the 5,333 photos of the Caltech subset and the demo (lowest / highest seen):
DARK_P99 = 60.0  # honest photos: 74.8 and up
OVEREXPOSED_P01 = 200.0  # honest photos: 184 at most,
OVEREXPOSED_MEAN = 240.0  # ... (the brightest mean, 250, is an object on white)
BLURRY_SHARPNESS = 12.0  # honest: 14 (a pyramid in haze), then 36 and up; a Gaussian blur of
# radius 2 px at 256 px gives 9-45, of radius 3 px 3.5-17
LOW_ENTROPY = 0.5  # bits; honest: 0.88 and up (a wrench on white); entropy below 2 bits is
# mostly product shots on white, which CleanVision's cut would flag as low information
ODD_SIZE_MIN = 48  # pixels; honest: 80 and up
ODD_SIZE_FACTOR = 4.0
ODD_ASPECT = 4.0  # honest: 3.75 at most (3.2 for 99.9% of them)
GREY_COLOUR = 1.0  # mean channel difference (of 255) below which a photo is grey
GREY_MAX_SHARE = 0.05  # the Caltech subset has 6.8% grey photos: normal there

QUALITY_REASONS = (
    "dark",
    "overexposed",
    "blurry",
    "low_information",
    "odd_size",
    "odd_aspect",
    "grayscale",
)
_TEXT = {
    "dark": "is very dark",
    "overexposed": "is washed out (overexposed)",
    "blurry": "is blurry everywhere",
    "low_information": "is nearly blank",
    "odd_size": "is much smaller than the others",
    "odd_aspect": "has an unusual shape (very wide or very tall)",
    "grayscale": "is black and white while the others are in colour",
}
_SCORE = {  # the more a photo's content is unreadable, the more it matters
    "low_information": 0.5,
    "dark": 0.45,
    "overexposed": 0.45,
    "blurry": 0.4,
    "odd_size": 0.35,
    "odd_aspect": 0.3,
    "grayscale": 0.25,
}


def quality_reasons(stats: dict[str, float], median_side: float, grey_share: float) -> list[str]:
    """The reasons (in QUALITY_REASONS order) one photo's measures give."""
    reasons = []
    if stats["bright_p99"] < DARK_P99:
        reasons.append("dark")
    if stats["bright_p01"] > OVEREXPOSED_P01 and stats["bright_mean"] > OVEREXPOSED_MEAN:
        reasons.append("overexposed")
    if stats["sharp_tiles"] < BLURRY_SHARPNESS and stats["entropy"] >= LOW_ENTROPY:
        reasons.append("blurry")
    if stats["entropy"] < LOW_ENTROPY:
        reasons.append("low_information")
    side = min(stats["width"], stats["height"])
    if side < ODD_SIZE_MIN or side * ODD_SIZE_FACTOR < median_side:
        reasons.append("odd_size")
    if max(stats["width"], stats["height"]) > ODD_ASPECT * max(side, 1.0):
        reasons.append("odd_aspect")
    if stats["colour"] < GREY_COLOUR and grey_share <= GREY_MAX_SHARE:
        reasons.append("grayscale")
    return reasons


def find_quality(data: ReviewData) -> list[Finding]:
    """One finding per photo with a quality problem (its first reason; all in details)."""
    from duetml.review.pixels import QUALITY_STATS

    if data.pixels is None:
        return []
    measured = []
    for record in data.records:
        row = data.pixels.row.get(data.hashes.get(record.rel, ""))
        if row is not None:
            values = data.pixels.stats[row]
            measured.append((record, dict(zip(QUALITY_STATS, map(float, values), strict=True))))
    if not measured:
        return []
    median_side = statistics.median(min(s["width"], s["height"]) for _, s in measured)
    grey_share = sum(s["colour"] < GREY_COLOUR for _, s in measured) / len(measured)
    findings = []
    for record, stats in measured:
        reasons = quality_reasons(stats, median_side, grey_share)
        if not reasons or data.photo_dismissed("quality", record.rel, (record.category,)):
            continue
        first = reasons[0]
        findings.append(
            make_finding(
                "quality",
                (record.rel,),
                (record.category,),
                _SCORE[first],
                f"This photo in {record.category!r} {_TEXT[first]}: the model may learn little "
                "from it. Check it, and remove it if it does not show its category clearly.",
                Suggestion("remove", (record.rel,), label="Remove this photo"),
                {"reason": first, "reasons": ",".join(reasons)},
            )
        )
    return findings
