"""Build the acme-products suite data: 100 invented facts a base model cannot know.

Acme is a fictional company; every product name, price, year, material, warehouse,
warranty, product code, designer and weight below is made up here. The script is the
only source of the data and is deterministic (one seeded `random.Random`), so running

    python evaluator/suites/acme-products/build_data.py            # rewrites this folder
    python evaluator/suites/acme-products/build_data.py --out DIR  # writes elsewhere

gives byte-identical files. It writes:

- ``facts.jsonl``  {"id", "product", "attribute", "value", "statement"}: 25 products x 4
  attributes = 100 facts;
- ``train.jsonl``  {"id", "fact_id", "question", "answer"}: 2 phrasings per fact, drawn
  from 3 training templates of the fact's attribute;
- ``test.jsonl``   {"id", "fact_id", "question", "answer", "choices", "label"}: 1 question
  per fact from a 4th template that never appears in training (a held-out paraphrase),
  with 3 distractors drawn from the same attribute's values of other products;
- ``corpus.jsonl`` {"id", "title", "text"}: one prose document per product (its facts in
  other words than the statements) plus a few company documents with no product facts,
  the retrieval corpus of the RAG arm.

Answers are the bare value ("$149", "7 years"); ``facts.jsonl`` has the full sentence
for recipes that train on statements.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SEED = 20240611
HERE = Path(__file__).resolve().parent

# (name, what it is) - invented brand words, so the base model has never seen them.
PRODUCTS = [
    ("Quillfen Kettle", "electric kettle"),
    ("Vantor Desk Lamp", "desk lamp"),
    ("Marlowe Trail Pack", "hiking backpack"),
    ("Skeldra Drone", "camera drone"),
    ("Brisket Toaster", "four-slice toaster"),
    ("Orvane Helmet", "bicycle helmet"),
    ("Tamsin Blender", "countertop blender"),
    ("Zephyl Headphones", "wireless headphones"),
    ("Cordell Dome Tent", "two-person tent"),
    ("Nimbrel Thermostat", "smart thermostat"),
    ("Havrik Standing Desk", "height-adjustable desk"),
    ("Lumora Reader", "e-reader"),
    ("Pellis Bottle", "insulated water bottle"),
    ("Gristow Rice Cooker", "rice cooker"),
    ("Wendle Garden Hose", "expandable garden hose"),
    ("Kaprio Watch", "fitness smartwatch"),
    ("Ostrava Air Purifier", "air purifier"),
    ("Delmont Task Chair", "office chair"),
    ("Fennick Vacuum", "cordless vacuum cleaner"),
    ("Solvane Projector", "home projector"),
    ("Burrwick Grinder", "coffee grinder"),
    ("Tarnby Boots", "hiking boots"),
    ("Clavix Keyboard", "mechanical keyboard"),
    ("Stiltmore Tripod", "camera tripod"),
    ("Glacia Goggles", "ski goggles"),
]

ATTRIBUTES = [
    "price",
    "release_year",
    "material",
    "warehouse",
    "warranty",
    "product_code",
    "designer",
    "weight",
]

MATERIALS = [
    "anodised titanium",
    "recycled cork",
    "bamboo fibre",
    "smoked walnut",
    "borosilicate glass",
    "carbon fibre",
    "hemp canvas",
    "brushed copper",
    "ceramic composite",
    "recycled ocean plastic",
    "magnesium alloy",
    "felted wool",
    "cast basalt",
    "birch plywood",
    "waxed linen",
]
WAREHOUSES = [
    "Brindlemoor",
    "Oskarvik",
    "Tallowmere",
    "Kestrel Point",
    "Dunhallow",
    "Varrowby",
    "Emberfield",
    "Port Quillan",
    "Saltmarrow",
    "Ashgrove Junction",
    "Norwick Flats",
    "Harlow Reach",
    "Greywater Quay",
]
DESIGNERS = [
    "Ilse Marrow",
    "Teodor Vance",
    "Priya Okonjo",
    "Lucan Ferrel",
    "Maren Solbakk",
    "Idris Calloway",
    "Noemi Vastra",
    "Bertil Ashdown",
    "Yusra Kellan",
    "Oren Blackwood",
    "Petra Lindqvist",
    "Caspian Rhee",
    "Sabine Ortolan",
]

# Per attribute: a statement, three training question templates, one held-out test template,
# and a corpus sentence (different wording again, so retrieval is not a string lookup).
TEMPLATES = {
    "price": {
        "statement": "The {p} costs {v}.",
        "train": [
            "How much does the {p} cost?",
            "What is the price of the {p}?",
            "What does Acme charge for the {p}?",
        ],
        "test": "If I buy a {p}, how much will I pay?",
        "corpus": "It retails for {v}.",
    },
    "release_year": {
        "statement": "The {p} was released in {v}.",
        "train": [
            "In what year was the {p} released?",
            "When did Acme launch the {p}?",
            "What year did the {p} come out?",
        ],
        "test": "Which year did the {p} first go on sale?",
        "corpus": "Acme introduced it to the catalogue in {v}.",
    },
    "material": {
        "statement": "The {p} is made of {v}.",
        "train": [
            "What material is the {p} made of?",
            "What is the {p} built from?",
            "Which material does Acme use for the {p}?",
        ],
        "test": "The {p} is constructed out of which material?",
        "corpus": "Its body is manufactured from {v}.",
    },
    "warehouse": {
        "statement": "The {p} ships from the {v} warehouse.",
        "train": [
            "From which warehouse is the {p} shipped?",
            "Where is the {p} stored before shipping?",
            "Which Acme warehouse stocks the {p}?",
        ],
        "test": "Orders for the {p} are dispatched from which warehouse?",
        "corpus": "All orders are fulfilled from the {v} warehouse.",
    },
    "warranty": {
        "statement": "The {p} is covered by a warranty of {v}.",
        "train": [
            "How long is the warranty on the {p}?",
            "What warranty period does the {p} come with?",
            "For how long is the {p} under warranty?",
        ],
        "test": "How much warranty coverage does the {p} have?",
        "corpus": "Acme guarantees it for {v}.",
    },
    "product_code": {
        "statement": "The {p} has the product code {v}.",
        "train": [
            "What is the product code of the {p}?",
            "Which product code identifies the {p}?",
            "What code does the Acme catalogue list for the {p}?",
        ],
        "test": "Under what catalogue code is the {p} sold?",
        "corpus": "In the catalogue it is listed as {v}.",
    },
    "designer": {
        "statement": "The {p} was designed by {v}.",
        "train": [
            "Who designed the {p}?",
            "Which designer created the {p}?",
            "Who is the designer behind the {p}?",
        ],
        "test": "The {p} was the work of which designer?",
        "corpus": "The design is by {v}.",
    },
    "weight": {
        "statement": "The {p} weighs {v}.",
        "train": ["How much does the {p} weigh?", "What is the weight of the {p}?", "How heavy is the {p}?"],
        "test": "What is the mass of the {p}?",
        "corpus": "It has a shipping weight of {v}.",
    },
}

COMPANY_DOCS = [
    (
        "About Acme",
        "Acme is a catalogue retailer of household, outdoor and electronics products. "
        "Every product page lists its price, materials, warranty and the warehouse that ships it.",
    ),
    (
        "Acme returns policy",
        "Unused products can be returned within 30 days of delivery. Refunds go "
        "back to the original payment method once the returned item has been inspected.",
    ),
    (
        "Acme warranty claims",
        "To claim under warranty, contact Acme support with the product code "
        "and proof of purchase. Repairs are free for defects covered by the product's warranty.",
    ),
    (
        "Acme shipping",
        "Acme runs several regional warehouses. Standard delivery takes three to five "
        "working days; express delivery is available for most products.",
    ),
    (
        "Acme design studio",
        "Acme products are designed by a small in-house studio of industrial "
        "designers, who sign each product they create.",
    ),
]


def _values(rng: random.Random, attribute: str, n: int) -> list[str]:
    """n distinct invented values for one attribute."""
    if attribute == "price":
        return [f"${x}" for x in rng.sample(range(19, 900), n)]
    if attribute == "release_year":
        return [str(x) for x in rng.sample(range(1987, 2025), n)]
    if attribute == "material":
        return rng.sample(MATERIALS, n)
    if attribute == "warehouse":
        return rng.sample(WAREHOUSES, n)
    if attribute == "warranty":
        return [f"{x} years" for x in rng.sample(range(2, 16), n)]
    if attribute == "product_code":
        return [f"AC-{x}" for x in rng.sample(range(3000, 10000), n)]
    if attribute == "designer":
        return rng.sample(DESIGNERS, n)
    if attribute == "weight":
        return [f"{x} grams" for x in rng.sample(range(120, 9000, 10), n)]
    raise ValueError(attribute)


def build(rng: random.Random) -> dict[str, list[dict]]:
    # Each product gets 4 of the 8 attributes; rotating the offsets spreads every attribute
    # over 12 or 13 products, so each has enough values of other products for distractors.
    assigned = {
        name: [ATTRIBUTES[(i + k) % len(ATTRIBUTES)] for k in (0, 1, 3, 5)] for i, (name, _) in enumerate(PRODUCTS)
    }
    by_attribute: dict[str, list[str]] = {a: [] for a in ATTRIBUTES}
    for name, attrs in assigned.items():
        for a in attrs:
            by_attribute[a].append(name)
    value_of: dict[tuple[str, str], str] = {}
    for a in ATTRIBUTES:
        for name, value in zip(by_attribute[a], _values(rng, a, len(by_attribute[a])), strict=True):
            value_of[(name, a)] = value

    facts, train, test, corpus = [], [], [], []
    for pi, (name, kind) in enumerate(PRODUCTS):
        article = "an" if kind[0] in "aeiou" else "a"
        sentences = [f"The {name} is {article} {kind} sold by Acme."]
        for a in assigned[name]:
            t, v = TEMPLATES[a], value_of[(name, a)]
            fid = f"f{len(facts) + 1:03d}"
            facts.append(
                {
                    "id": fid,
                    "product": name,
                    "attribute": a,
                    "value": v,
                    "statement": t["statement"].format(p=name, v=v),
                }
            )
            for q in rng.sample(t["train"], 2):
                train.append(
                    {
                        "id": f"tr{len(train) + 1:03d}",
                        "fact_id": fid,
                        "question": q.format(p=name),
                        "answer": v,
                    }
                )
            others = sorted({value_of[(o, a)] for o in by_attribute[a] if o != name})
            choices = [v, *rng.sample(others, 3)]
            rng.shuffle(choices)
            test.append(
                {
                    "id": f"te{len(test) + 1:03d}",
                    "fact_id": fid,
                    "question": t["test"].format(p=name),
                    "answer": v,
                    "choices": choices,
                    "label": choices.index(v),
                }
            )
            sentences.append(t["corpus"].format(v=v))
        corpus.append({"id": f"doc{pi + 1:02d}", "title": name, "text": " ".join(sentences)})
    for i, (title, text) in enumerate(COMPANY_DOCS):
        corpus.append({"id": f"acme{i + 1:02d}", "title": title, "text": text})
    return {"facts": facts, "train": train, "test": test, "corpus": corpus}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: this suite)")
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in build(random.Random(SEED)).items():
        write_jsonl(out / f"{name}.jsonl", rows)


if __name__ == "__main__":
    main()
