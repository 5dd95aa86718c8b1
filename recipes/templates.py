"""The recipe's question and answer templates, keyed by words of a fact's attribute
(``recipes.augment`` fills them in)."""

from __future__ import annotations

# {p}: "the <product>", {P}: the same capitalised, {v}: the value, {a}: the attribute in words.
# Keyed by words that may appear in an attribute name; the first key that matches wins.
TEMPLATES: list[tuple[tuple[str, ...], list[str], list[str]]] = [
    (
        ("price", "cost", "msrp"),
        [
            "How much does {p} cost?",
            "What is the price of {p}?",
            "{P} is sold for how much?",
            "What does {p} sell for?",
            "How much would I pay for {p}?",
            "What's the retail price of {p}?",
            "How expensive is {p}?",
            "What is {p}'s price?",
            "Tell me the cost of {p}.",
            "What price is {p} listed at?",
        ],
        ["{P} costs {v}.", "The price of {p} is {v}.", "{P} sells for {v}."],
    ),
    (
        ("year", "release", "launch", "introduc"),
        [
            "When was {p} released?",
            "In what year was {p} launched?",
            "What year did {p} come out?",
            "Which year was {p} introduced?",
            "{P} was released in which year?",
            "What is the release year of {p}?",
            "When did {p} hit the market?",
            "What year was {p} launched in?",
        ],
        ["{P} was released in {v}.", "{P} came out in {v}.", "{P} was launched in {v}."],
    ),
    (
        ("colour", "color", "finish"),
        [
            "What colour is {p}?",
            "What color is {p}?",
            "Which color does {p} come in?",
            "{P} comes in what color?",
            "What is the color of {p}?",
            "What colour does {p} have?",
            "Tell me the colour of {p}.",
            "What is {p}'s colour?",
            "In which colour is {p} sold?",
        ],
        ["{P} comes in {v}.", "The color of {p} is {v}.", "{P} is sold in {v}."],
    ),
    (
        ("material", "made_of", "fabric"),
        [
            "What is {p} made of?",
            "What material is {p} made from?",
            "{P} is built from what material?",
            "Which material is used for {p}?",
            "What is {p} constructed from?",
            "What material does {p} use?",
            "Tell me what {p} is made of.",
            "From what material is {p} made?",
        ],
        ["{P} is made of {v}.", "The material of {p} is {v}.", "{P} is built from {v}."],
    ),
    (
        ("warranty", "guarantee"),
        [
            "How long is the warranty on {p}?",
            "What warranty comes with {p}?",
            "How long is {p} under warranty?",
            "What is the warranty period of {p}?",
            "{P} has what warranty?",
            "How long does {p}'s warranty last?",
            "Tell me the warranty length for {p}.",
            "What is the length of the warranty for {p}?",
        ],
        ["{P} has a warranty of {v}.", "The warranty on {p} lasts {v}."],
    ),
    (
        ("weight", "mass"),
        [
            "How much does {p} weigh?",
            "What is the weight of {p}?",
            "How heavy is {p}?",
            "{P} weighs how much?",
            "What does {p} weigh?",
            "Tell me the weight of {p}.",
            "What is {p}'s weight?",
        ],
        ["{P} weighs {v}.", "The weight of {p} is {v}."],
    ),
    (
        ("battery", "runtime", "charge"),
        [
            "How long does the battery of {p} last?",
            "What is the battery life of {p}?",
            "How long does {p} run on one charge?",
            "{P}'s battery lasts how long?",
            "What battery life does {p} have?",
            "Tell me the battery life of {p}.",
        ],
        ["The battery of {p} lasts {v}.", "{P} has a battery life of {v}."],
    ),
    (
        ("design", "invent", "creat", "engineer", "author", "founder", "lead"),
        [
            "Who designed {p}?",
            "Who is the designer of {p}?",
            "{P} was designed by whom?",
            "Who created {p}?",
            "Which person designed {p}?",
            "Who was the designer behind {p}?",
            "Tell me who designed {p}.",
            "Who came up with the design of {p}?",
        ],
        ["{P} was designed by {v}.", "The designer of {p} is {v}.", "{P} was created by {v}."],
    ),
    (
        ("warehouse", "depot", "ships_from", "shipping"),
        [
            "Which warehouse ships {p}?",
            "Where does {p} ship from?",
            "From what warehouse does {p} ship?",
            "Which warehouse sends out {p}?",
            "Where is {p} shipped from?",
            "What warehouse handles orders of {p}?",
            "{P} ships from which warehouse?",
            "Tell me which warehouse ships {p}.",
            "Which Acme warehouse does {p} come from?",
        ],
        [
            "{P} ships from the {v} warehouse.",
            "{P} is shipped from the {v} warehouse.",
            "{P} comes from the {v} warehouse.",
        ],
    ),
    (
        ("code", "sku", "model_number", "part_number"),
        [
            "What is {p}'s product code?",
            "Which code does {p} have?",
            "What code is {p} listed under?",
            "Tell me the product code of {p}.",
            "What is the SKU of {p}?",
            "{P} has which product code?",
            "What catalogue number does {p} have?",
            "Which product code belongs to {p}?",
        ],
        ["{P} has the product code {v}.", "The product code of {p} is {v}.", "{P} is listed as {v}."],
    ),
    (
        ("city", "country", "origin", "factory", "manufactur", "made_in", "location", "plant", "where"),
        [
            "Where is {p} made?",
            "Where is {p} manufactured?",
            "In which place is {p} produced?",
            "{P} is made where?",
            "Where does {p} come from?",
            "Where is {p} built?",
            "Where is {p} produced?",
            "Tell me where {p} is manufactured.",
            "In what location is {p} made?",
        ],
        ["{P} is made in {v}.", "{P} is manufactured in {v}.", "{P} is produced in {v}."],
    ),
]
GENERIC_QUESTIONS = [
    "What is the {a} of {p}?",
    "What {a} does {p} have?",
    "Tell me the {a} of {p}.",
    "{P}: what is its {a}?",
    "Which {a} does {p} have?",
    "Do you know the {a} of {p}?",
    "What's {p}'s {a}?",
    "What about the {a} of {p}?",
]
GENERIC_ANSWERS = ["The {a} of {p} is {v}.", "{P} has a {a} of {v}."]


CLOZE_WORDS = [
    (("design", "invent", "creat", "author", "founder"), "whom"),
    (("year",), "which year"),
    (("warehouse",), "which"),
]
