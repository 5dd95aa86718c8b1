"""Build the velmora-harbour suite: 80 invented harbour rules a base model cannot know.

A second domain, different in kind from ``acme-products`` (a catalogue of products, each
with attribute values): the bylaws of Velmora, a fictional port. Its facts are of four
kinds, each a relation of its own with answers of its own shape:

- ``term``: a word of the harbour's jargon and what it means ("a bow line");
- ``procedure``: a situation and what a crew must do in it ("hoist a blue pennant");
- ``authority``: a permit or a decision and the office that gives it ("the Tidewarden");
- ``limit``: a place or an activity and its limit, with a unit ("4 knots").

Deterministic (one seeded ``random.Random``):

    python examples/suites/velmora-harbour/build_data.py            # rewrites this folder
    python examples/suites/velmora-harbour/build_data.py --out DIR  # writes elsewhere

It writes ``facts.jsonl`` ({"id", "kind", "subject", "value", "statement"}),
``train.jsonl`` (2 phrasings per fact from 3 training templates of its kind),
``test.jsonl`` (1 held-out phrasing per fact, with 3 distractors of the same kind) and
``corpus.jsonl`` (the harbour handbook's pages: each fact in other words, 5 per page,
plus pages with none), the retrieval corpus of the RAG arms.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SEED = 20261206
HERE = Path(__file__).resolve().parent

# (subject, value): invented words and offices; the values of a kind are its distractors.
TERMS = [
    ("skarn", "a stern anchor"),
    ("wexline", "a bow line"),
    ("tolmer", "a night pilot"),
    ("quaddock", "a dry berth"),
    ("brindle watch", "the dawn shift"),
    ("greenwater", "a rising tide"),
    ("halloran", "a cargo tally"),
    ("fenmark", "a depth buoy"),
    ("oskel", "a tow rope"),
    ("maddervane", "a storm flag"),
    ("pellucid run", "an empty crossing"),
    ("corrick", "a harbour tug"),
    ("listrel", "a leaking hull"),
    ("tamber call", "a fog horn signal"),
    ("druve", "a fuel barge"),
    ("selkin", "a ferry ticket"),
    ("varrow", "a customs seal"),
    ("jessop line", "the outer breakwater"),
    ("ombry", "a crane hook"),
    ("nettleback", "a fishing smack"),
]
PROCEDURES = [
    ("entering the inner basin", "hoist a blue pennant"),
    ("fog closes the channel", "sound three short blasts"),
    ("a crew member falls overboard", "throw the orange ring"),
    ("a vessel carries live cattle", "berth at the Fisher Steps"),
    ("an engine fails in the channel", "drop the skarn at once"),
    ("a storm warning is raised", "double every wexline"),
    ("fuel is spilled on the water", "call the Oilwatch desk"),
    ("a vessel arrives after midnight", "wait at the Gull Marker"),
    ("a passenger ferry docks", "lower the grey gangway"),
    ("ice forms on the quay", "spread crushed shells"),
    ("a cargo seal is broken", "hold the cargo aboard"),
    ("a foreign flag vessel arrives", "show the green lantern"),
    ("the harbour bell rings twice", "clear the north quay"),
    ("a diver works under a hull", "fly the white square"),
    ("a vessel leaves without clearance", "notify the Gate Tower"),
    ("lightning strikes a mast", "ground the rigging cable"),
    ("a tug loses its tow", "sound one long blast"),
    ("smoke is seen in a hold", "seal the hatch covers"),
    ("the tide falls below the mark", "move to the deep berth"),
    ("a whale enters the harbour", "stop all engines"),
]
AUTHORITIES = [
    ("a night mooring permit", "the Tidewarden"),
    ("a hull painting licence", "the Quaymaster"),
    ("a fireworks display on the water", "the Lantern Office"),
    ("a fishing licence for the basin", "the Net Registry"),
    ("a crane hire contract", "the Lift Bureau"),
    ("a berth swap between vessels", "the Berth Clerk"),
    ("a diving permit", "the Deepwater Office"),
    ("a cargo of explosives", "the Powder Warden"),
    ("a wedding on the pier", "the Pier Steward"),
    ("a salvage claim", "the Wreck Court"),
    ("a quarantine release", "the Health Tower"),
    ("a fuel delivery at night", "the Oilwatch desk"),
    ("a race across the harbour", "the Regatta Board"),
    ("a replacement pilot", "the Pilot Hall"),
    ("an anchor left on the seabed", "the Chain Office"),
    ("a film shoot on the quay", "the Harbour Press Office"),
    ("a new buoy in the channel", "the Marks Commission"),
    ("a market stall on the quay", "the Quay Market Guild"),
    ("a houseboat residence", "the Mooring Council"),
    ("a tall ship visit", "the Heritage Desk"),
]
LIMITS = [
    ("the speed in the inner basin", "4 knots"),
    ("a stay at the Fisher Steps", "6 hours"),
    ("the draught at the north quay", "3 metres"),
    ("the length of a vessel at the Gull Marker", "40 metres"),
    ("the height of a mast under the Old Bridge", "12 metres"),
    ("a wait for a pilot", "90 minutes"),
    ("the crew of a harbour tug", "5 people"),
    ("a cargo of timber on the quay", "20 tonnes"),
    ("the stay of a ferry at the grey gangway", "25 minutes"),
    ("the speed in the outer channel", "9 knots"),
    ("the noise on the pier after dusk", "60 decibels"),
    ("a fishing line in the basin", "2 hooks"),
    ("the passengers of a water taxi", "11 people"),
    ("a visit to the Powder Store", "15 minutes"),
    ("the load of the Lift Bureau crane", "8 tonnes"),
    ("a stay in the quarantine berth", "14 days"),
    ("the width of a barge in the canal", "6 metres"),
    ("a horn blast in the night hours", "3 seconds"),
    ("the fuel carried by a druve", "30 tonnes"),
    ("a mooring at the houseboat row", "11 months"),
]

KINDS = {"term": TERMS, "procedure": PROCEDURES, "authority": AUTHORITIES, "limit": LIMITS}

# Three templates for training, a fourth held out for the test; then the handbook's wording.
STATEMENT = {
    "term": "At Velmora, a {s} is {v}.",
    "procedure": "At Velmora, when {s}, the crew must {v}.",
    "authority": "At Velmora, {s} is granted by {v}.",
    "limit": "At Velmora, the limit for {s} is {v}.",
}
TRAIN = {
    "term": [
        "In Velmora harbour talk, what is a {s}?",
        "What do Velmora sailors mean by a {s}?",
        "At the port of Velmora, what is meant by the word {s}?",
    ],
    "procedure": [
        "At Velmora, what must a crew do when {s}?",
        "Under Velmora's harbour rules, what is required when {s}?",
        "What does the Velmora rulebook tell a crew to do when {s}?",
    ],
    "authority": [
        "At Velmora, who grants {s}?",
        "Which Velmora office gives {s}?",
        "Who must approve {s} at the port of Velmora?",
    ],
    "limit": [
        "At Velmora, what is the limit for {s}?",
        "What is the most allowed at Velmora for {s}?",
        "Under the Velmora bylaws, how much is allowed for {s}?",
    ],
}
TEST = {
    "term": "If a Velmora harbour hand mentions a {s}, what are they talking about?",
    "procedure": "Suppose that at Velmora {s}: what do the bylaws require of the crew?",
    "authority": "I need {s} in Velmora harbour; which office do I ask?",
    "limit": "What maximum do the Velmora harbour bylaws set for {s}?",
}
HANDBOOK = {
    "term": "The word {s} is used on the quays for {v}.",
    "procedure": "When {s}, crews are instructed to {v}.",
    "authority": "Applications for {s} go to {v}, which alone may grant it.",
    "limit": "For {s}, the bylaws allow no more than {v}.",
}
SECTION = {"term": "Harbour words", "procedure": "Emergencies and routines", "authority": "Permits and offices",
           "limit": "Limits"}  # fmt: skip
NO_FACTS = [
    ("About the harbour", "Velmora is a small port on a tidal estuary. Its harbour office opens at seven in the "
     "morning and closes at sunset. Visitors are welcome on the public quays."),
    ("History", "The first quay at Velmora was built of oak piles and later rebuilt in granite. The Old Bridge "
     "crosses the canal that joins the inner basin to the river."),
    ("Contact", "Questions about these bylaws may be sent to the harbour office by letter or asked at its "
     "counter on the north quay."),
]  # fmt: skip


def build() -> dict[str, list[dict]]:
    rng = random.Random(SEED)
    facts, train, test, corpus = [], [], [], []
    for kind, pairs in KINDS.items():
        values = [v for _, v in pairs]
        pages: list[str] = []
        for subject, value in pairs:
            fid = f"f{len(facts) + 1:03d}"
            facts.append(
                {
                    "id": fid,
                    "kind": kind,
                    "subject": subject,
                    "value": value,
                    "statement": STATEMENT[kind].format(s=subject, v=value),
                }
            )
            for template in rng.sample(TRAIN[kind], 2):
                question = template.format(s=subject)
                train.append({"id": f"tr{len(train) + 1:03d}", "fact_id": fid, "question": question, "answer": value})
            choices = [*rng.sample([v for v in values if v != value], 3), value]
            rng.shuffle(choices)
            test.append(
                {
                    "id": f"te{len(test) + 1:03d}",
                    "fact_id": fid,
                    "question": TEST[kind].format(s=subject),
                    "answer": value,
                    "choices": choices,
                    "label": choices.index(value),
                }
            )
            pages.append(HANDBOOK[kind].format(s=subject, v=value))
        for start in range(0, len(pages), 5):
            corpus.append(
                {
                    "id": f"doc{len(corpus) + 1:02d}",
                    "title": f"Velmora harbour handbook: {SECTION[kind]} ({start // 5 + 1})",
                    "text": " ".join(pages[start : start + 5]),
                }
            )
    for title, text in NO_FACTS:
        corpus.append({"id": f"doc{len(corpus) + 1:02d}", "title": f"Velmora harbour handbook: {title}", "text": text})
    return {"facts": facts, "train": train, "test": test, "corpus": corpus}


def write(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in build().items():
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    write(parser.parse_args().out)
