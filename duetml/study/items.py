"""The questionnaires and rating items of a study, with their sources.

UQ1-UQ5 and EQ1-EQ5 are the items of the DuetML paper's user study, in the paper's own
wording (docs/paper.md, "The user study": "Questionnaire for DuetML users, 5-point Likert: UQ1
the advice was accurate; UQ2 the advice was useful; ..."; "Third-party rating of the training
data ... EQ1 appropriateness of category names; ..."). UMUX-Lite is the standard usability
scale asked of both conditions: two items on a 7-point scale (Lewis, Utesch & Maher, "UMUX-LITE:
when there's no time for the SUS", CHI 2013, doi:10.1145/2470654.2481287). It is chosen over
the 10-item SUS because it is asked after every timed task (that paper reports it tracks
SUS closely); its score is (UMUX1 + UMUX2 - 2) / 12 * 100.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER = "the DuetML paper's user study (docs/paper.md, 'The user study')"
UMUX_LITE = "Lewis, Utesch & Maher 2013, UMUX-LITE, CHI '13, doi:10.1145/2470654.2481287"


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    points: int  # a Likert scale from 1 to `points`
    low: str
    high: str
    source: str


@dataclass(frozen=True)
class Questionnaire:
    id: str
    title: str
    items: tuple[Item, ...]
    conditions: tuple[str, ...]  # the conditions that are asked it
    source: str


_AGREE = ("Strongly disagree", "Strongly agree")

UQ = Questionnaire(
    id="UQ",
    title="About the assistant",
    conditions=("agents",),
    source=PAPER,
    items=tuple(
        Item(f"UQ{n}", text, 5, *_AGREE, PAPER)
        for n, text in enumerate(
            (
                "The advice was accurate.",
                "The advice was useful.",
                "The proactive advice was useful.",
                "Asking in chat was useful.",
                "The ask buttons were useful.",
            ),
            start=1,
        )
    ),
)

UMUX = Questionnaire(
    id="UMUX",
    title="About the tool (UMUX-Lite)",
    conditions=("agents", "baseline"),
    source=UMUX_LITE,
    items=(
        Item("UMUX1", "This tool's capabilities meet my requirements.", 7, *_AGREE, UMUX_LITE),
        Item("UMUX2", "This tool is easy to use.", 7, *_AGREE, UMUX_LITE),
    ),
)

EQ = Questionnaire(
    id="EQ",
    title="The training data",
    conditions=("agents", "baseline"),
    source=PAPER,
    items=tuple(
        Item(f"EQ{n}", text, 5, "Very poor", "Very good", PAPER)
        for n, text in enumerate(
            (
                "Appropriateness of the category names.",
                "Validity of the images.",
                "Agreement between the names and the images.",
                "Coverage of the categories.",
                "Mutual exclusivity of the categories.",
            ),
            start=1,
        )
    ),
)

PARTICIPANT_QUESTIONNAIRES = (UQ, UMUX)
ALL_ITEMS: dict[str, Item] = {i.id: i for q in (UQ, UMUX, EQ) for i in q.items}


def questionnaires_for(condition: str) -> list[Questionnaire]:
    """What a participant in ``condition`` answers at the end of a timed task."""
    return [q for q in PARTICIPANT_QUESTIONNAIRES if condition in q.conditions]


def umux_lite_score(umux1: int, umux2: int) -> float:
    """The UMUX-Lite score from 0 to 100 (Lewis et al. 2013)."""
    return (umux1 + umux2 - 2) / 12 * 100
