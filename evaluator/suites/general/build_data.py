"""Build the general suite data: ~100 easy questions for measuring forgetting.

The questions are plain facts (capitals, colours, animals, science), simple arithmetic
and common sense: things SmolLM2-135M-Instruct mostly gets right, so a drop after
fine-tuning is the adapter's doing (catastrophic forgetting), not noise around chance.
The bank below is hand-written; arithmetic items and the order of choices come from one
seeded `random.Random`, so

    python evaluator/suites/general/build_data.py            # rewrites this folder
    python evaluator/suites/general/build_data.py --out DIR  # writes elsewhere

gives byte-identical files. It writes ``test.jsonl``:
{"id", "category", "question", "prefix", "answer", "choices": [4 strings], "label"}.

``prefix`` is how the answer sentence starts ("The capital of France is"); the tasks give
it to the model as the start of its reply (lm-eval's ``gen_prefix``). A 135M chat model
that must put the bare answer first scores near chance on several of these questions
(62% overall, 8/22 on arithmetic, measured); continuing its own sentence, it shows what
it knows, which is what forgetting is measured against.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SEED = 20240612
HERE = Path(__file__).resolve().parent

CAPITALS = [
    ("France", "Paris", ["Berlin", "Madrid", "Rome"]),
    ("Germany", "Berlin", ["Vienna", "Paris", "Warsaw"]),
    ("Italy", "Rome", ["Madrid", "Athens", "Lisbon"]),
    ("Spain", "Madrid", ["Lisbon", "Rome", "Paris"]),
    ("Japan", "Tokyo", ["Beijing", "Seoul", "Bangkok"]),
    ("the United Kingdom", "London", ["Dublin", "Paris", "Oslo"]),
    ("Russia", "Moscow", ["Warsaw", "Berlin", "Stockholm"]),
    ("China", "Beijing", ["Tokyo", "Seoul", "Bangkok"]),
    ("Egypt", "Cairo", ["Nairobi", "Athens", "Madrid"]),
    ("Greece", "Athens", ["Rome", "Cairo", "Vienna"]),
    ("Portugal", "Lisbon", ["Madrid", "Rome", "Dublin"]),
    ("Ireland", "Dublin", ["London", "Oslo", "Lisbon"]),
    ("Norway", "Oslo", ["Stockholm", "Dublin", "Vienna"]),
    ("Austria", "Vienna", ["Berlin", "Warsaw", "Athens"]),
    ("Poland", "Warsaw", ["Moscow", "Vienna", "Oslo"]),
    ("Sweden", "Stockholm", ["Oslo", "Warsaw", "Berlin"]),
    ("South Korea", "Seoul", ["Tokyo", "Beijing", "Bangkok"]),
    ("Thailand", "Bangkok", ["Seoul", "Tokyo", "Cairo"]),
    ("the Netherlands", "Amsterdam", ["Berlin", "Paris", "Oslo"]),
    ("Kenya", "Nairobi", ["Cairo", "Lisbon", "Athens"]),
]
# (thing, how the answer sentence starts, colour, wrong colours)
COLOURS = [
    ("the sky on a clear day", "The sky on a clear day is", "blue", ["green", "red", "purple"]),
    ("fresh grass", "Fresh grass is", "green", ["blue", "red", "white"]),
    ("snow", "Snow is", "white", ["black", "green", "red"]),
    ("a ripe banana", "A ripe banana is", "yellow", ["blue", "purple", "black"]),
    ("coal", "Coal is", "black", ["white", "yellow", "pink"]),
    ("blood", "Blood is", "red", ["green", "blue", "yellow"]),
    ("milk", "Milk is", "white", ["black", "green", "red"]),
    ("a ripe tomato", "A ripe tomato is", "red", ["blue", "white", "purple"]),
    ("a carrot", "A carrot is", "orange", ["blue", "purple", "black"]),
    ("a lemon", "A lemon is", "yellow", ["blue", "black", "purple"]),
]
# (category, question, how the answer sentence starts, answer, three wrong choices)
BANK = [
    ("animal", "Which animal says moo?", "The animal that says moo is a", "cow", ["dog", "cat", "duck"]),
    ("animal", "Which animal barks?", "The animal that barks is a", "dog", ["cow", "fish", "snake"]),
    ("animal", "Which animal meows?", "The animal that meows is a", "cat", ["dog", "horse", "cow"]),
    (
        "animal",
        "Which animal is called the king of the jungle?",
        "The king of the jungle is the",
        "lion",
        ["mouse", "rabbit", "frog"],
    ),
    (
        "animal",
        "What is the largest land animal?",
        "The largest land animal is the",
        "elephant",
        ["mouse", "cat", "rabbit"],
    ),
    (
        "animal",
        "Which animal has a very long neck?",
        "The animal with a very long neck is the",
        "giraffe",
        ["pig", "mouse", "frog"],
    ),
    (
        "animal",
        "Which black and white bear eats bamboo?",
        "The black and white bear that eats bamboo is the",
        "panda",
        ["lion", "shark", "eagle"],
    ),
    ("animal", "Which insect makes honey?", "The insect that makes honey is the", "bee", ["ant", "spider", "fly"]),
    (
        "animal",
        "Which animal hops and carries its baby in a pouch?",
        "The animal that hops and carries its baby in a pouch is the",
        "kangaroo",
        ["horse", "dog", "snake"],
    ),
    ("animal", "How many legs does a spider have?", "A spider has", "eight", ["two", "four", "six"]),
    ("animal", "How many legs does a dog have?", "A dog has", "four", ["two", "six", "eight"]),
    (
        "animal",
        "Which bird cannot fly and lives in Antarctica?",
        "The bird that cannot fly and lives in Antarctica is the",
        "penguin",
        ["eagle", "parrot", "owl"],
    ),
    ("animal", "What do bees make?", "Bees make", "honey", ["milk", "silk", "bread"]),
    ("animal", "Where do fish live?", "Fish live in", "water", ["trees", "deserts", "caves"]),
    ("animal", "What is a baby cat called?", "A baby cat is called a", "kitten", ["puppy", "calf", "chick"]),
    ("animal", "What is a baby dog called?", "A baby dog is called a", "puppy", ["kitten", "calf", "foal"]),
    ("science", "Which planet do we live on?", "We live on the planet", "Earth", ["Mars", "Venus", "Jupiter"]),
    (
        "science",
        "Which star is closest to the Earth?",
        "The star closest to the Earth is",
        "the Sun",
        ["Sirius", "Polaris", "Vega"],
    ),
    (
        "science",
        "Which gas do humans need to breathe to stay alive?",
        "To stay alive, humans need to breathe",
        "oxygen",
        ["helium", "neon", "argon"],
    ),
    (
        "science",
        "What is the largest ocean on Earth?",
        "The largest ocean on Earth is the",
        "Pacific",
        ["Indian", "Arctic", "Southern"],
    ),
    (
        "science",
        "Which planet is known as the Red Planet?",
        "The planet known as the Red Planet is",
        "Mars",
        ["Venus", "Saturn", "Neptune"],
    ),
    (
        "science",
        "What is the largest planet in our solar system?",
        "The largest planet in our solar system is",
        "Jupiter",
        ["Mercury", "Mars", "Venus"],
    ),
    ("science", "What is frozen water called?", "Frozen water is called", "ice", ["steam", "sand", "glass"]),
    (
        "science",
        "At what temperature in Celsius does water boil?",
        "Water boils at",
        "100 degrees Celsius",
        ["10 degrees Celsius", "50 degrees Celsius", "0 degrees Celsius"],
    ),
    (
        "science",
        "Which organ pumps blood around the body?",
        "The organ that pumps blood around the body is the",
        "heart",
        ["lung", "liver", "brain"],
    ),
    (
        "science",
        "What is the tallest mountain in the world?",
        "The tallest mountain in the world is",
        "Mount Everest",
        ["Mount Fuji", "Ben Nevis", "Mont Blanc"],
    ),
    ("science", "What does the Moon orbit?", "The Moon orbits", "the Earth", ["the Sun", "Mars", "Jupiter"]),
    (
        "science",
        "What do plants need from the sun to grow?",
        "To grow, plants need the sun's",
        "light",
        ["sand", "salt", "metal"],
    ),
    ("everyday", "How many days are in a week?", "A week has", "seven", ["five", "ten", "twelve"]),
    ("everyday", "How many hours are in a day?", "A day has", "24", ["12", "48", "60"]),
    ("everyday", "How many months are in a year?", "A year has", "twelve", ["ten", "seven", "twenty"]),
    (
        "everyday",
        "What is the first month of the year?",
        "The first month of the year is",
        "January",
        ["March", "June", "December"],
    ),
    (
        "everyday",
        "Which day comes after Monday?",
        "The day after Monday is",
        "Tuesday",
        ["Sunday", "Friday", "Thursday"],
    ),
    (
        "everyday",
        "Which season comes after winter?",
        "The season after winter is",
        "spring",
        ["summer", "autumn", "evening"],
    ),
    (
        "everyday",
        "Which meal is eaten in the morning?",
        "The meal eaten in the morning is",
        "breakfast",
        ["dinner", "supper", "lunch"],
    ),
    ("everyday", "What do you wear on your feet?", "On your feet you wear", "shoes", ["hats", "gloves", "scarves"]),
    ("everyday", "What do you use to cut paper?", "To cut paper you use", "scissors", ["a spoon", "a pillow", "a cup"]),
    ("everyday", "What is the opposite of hot?", "The opposite of hot is", "cold", ["warm", "big", "fast"]),
    ("everyday", "What is the opposite of up?", "The opposite of up is", "down", ["left", "over", "high"]),
    ("everyday", "What is the opposite of big?", "The opposite of big is", "small", ["tall", "heavy", "wide"]),
    ("everyday", "What is the opposite of day?", "The opposite of day is", "night", ["morning", "noon", "week"]),
    (
        "everyday",
        "Which shape has three sides?",
        "The shape with three sides is a",
        "triangle",
        ["square", "circle", "hexagon"],
    ),
    ("everyday", "How many sides does a square have?", "A square has", "four", ["three", "five", "six"]),
    (
        "everyday",
        "Where do people sleep at night?",
        "At night, people sleep in",
        "a bed",
        ["a sink", "an oven", "a fridge"],
    ),
    (
        "everyday",
        "What do you drink when you are thirsty?",
        "When you are thirsty, you drink",
        "water",
        ["sand", "paint", "oil"],
    ),
    (
        "everyday",
        "What do you use to unlock a door?",
        "To unlock a door you use",
        "a key",
        ["a spoon", "a book", "a sock"],
    ),
    (
        "everyday",
        "What do you need an umbrella for?",
        "You need an umbrella for the",
        "rain",
        ["sunset", "music", "hunger"],
    ),
    (
        "everyday",
        "Which utensil do you use to eat soup?",
        "To eat soup you use",
        "a spoon",
        ["a knife", "a fork", "chopsticks"],
    ),
]


def arithmetic(rng: random.Random) -> list[tuple[str, str, str, str, list[str]]]:
    """22 small sums, differences and products with near-miss distractors."""
    items = []
    for op, count in (("+", 10), ("-", 6), ("*", 6)):
        seen: set[tuple[int, int]] = set()
        while len(seen) < count:
            a, b = rng.randint(2, 9), rng.randint(2, 9)
            if op == "-" and a <= b:
                a, b = b + rng.randint(2, 9), a
            if (a, b) in seen:
                continue
            seen.add((a, b))
            value = a + b if op == "+" else a - b if op == "-" else a * b
            word = {"+": "plus", "-": "minus", "*": "times"}[op]
            wrong = rng.sample([d for d in (-3, -2, -1, 1, 2, 3) if value + d > 0], 3)
            question, prefix = f"What is {a} {word} {b}?", f"{a} {word} {b} equals"
            items.append(("arithmetic", question, prefix, str(value), [str(value + d) for d in wrong]))
    return items


def build(rng: random.Random) -> list[dict]:
    items = [("capital", f"What is the capital of {c}?", f"The capital of {c} is", a, w) for c, a, w in CAPITALS]
    items += [("colour", f"What colour is {t}?", p, a, w) for t, p, a, w in COLOURS]
    rows = []
    for category, question, prefix, answer, wrong in [*items, *BANK, *arithmetic(rng)]:
        choices = [answer, *wrong]
        rng.shuffle(choices)
        rows.append(
            {
                "id": f"g{len(rows) + 1:03d}",
                "category": category,
                "question": question,
                "prefix": prefix,
                "answer": answer,
                "choices": choices,
                "label": choices.index(answer),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: this suite)")
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    with (out / "test.jsonl").open("w", encoding="utf-8", newline="\n") as fh:
        for row in build(random.Random(SEED)):
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
