"""Build the general suite data: ~100 easy questions for measuring forgetting.

The questions are plain facts (capitals, colours, animals, science), simple arithmetic
and common sense: things SmolLM2-135M-Instruct mostly gets right, so a drop after
fine-tuning is the adapter's doing (catastrophic forgetting), not noise around chance.
The bank below is hand-written; arithmetic items and the order of choices come from one
seeded `random.Random`, so

    python evaluator/suites/general/build_data.py            # rewrites this folder
    python evaluator/suites/general/build_data.py --out DIR  # writes elsewhere

gives byte-identical files. It writes ``test.jsonl``:
{"id", "category", "question", "answer", "choices": [4 strings], "label"}.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SEED = 20240612
HERE = Path(__file__).resolve().parent

# (category, question, answer, three wrong choices)
BANK = [
    ("capital", "What is the capital of France?", "Paris", ["Berlin", "Madrid", "Rome"]),
    ("capital", "What is the capital of Germany?", "Berlin", ["Vienna", "Paris", "Warsaw"]),
    ("capital", "What is the capital of Italy?", "Rome", ["Madrid", "Athens", "Lisbon"]),
    ("capital", "What is the capital of Spain?", "Madrid", ["Lisbon", "Rome", "Paris"]),
    ("capital", "What is the capital of Japan?", "Tokyo", ["Beijing", "Seoul", "Bangkok"]),
    ("capital", "What is the capital of the United Kingdom?", "London", ["Dublin", "Paris", "Oslo"]),
    ("capital", "What is the capital of Russia?", "Moscow", ["Warsaw", "Berlin", "Stockholm"]),
    ("capital", "What is the capital of China?", "Beijing", ["Tokyo", "Seoul", "Bangkok"]),
    ("capital", "What is the capital of Egypt?", "Cairo", ["Nairobi", "Athens", "Madrid"]),
    ("capital", "What is the capital of Greece?", "Athens", ["Rome", "Cairo", "Vienna"]),
    ("capital", "What is the capital of Portugal?", "Lisbon", ["Madrid", "Rome", "Dublin"]),
    ("capital", "What is the capital of Ireland?", "Dublin", ["London", "Oslo", "Lisbon"]),
    ("capital", "What is the capital of Norway?", "Oslo", ["Stockholm", "Dublin", "Vienna"]),
    ("capital", "What is the capital of Austria?", "Vienna", ["Berlin", "Warsaw", "Athens"]),
    ("capital", "What is the capital of Poland?", "Warsaw", ["Moscow", "Vienna", "Oslo"]),
    ("capital", "What is the capital of Sweden?", "Stockholm", ["Oslo", "Warsaw", "Berlin"]),
    ("capital", "What is the capital of South Korea?", "Seoul", ["Tokyo", "Beijing", "Bangkok"]),
    ("capital", "What is the capital of Thailand?", "Bangkok", ["Seoul", "Tokyo", "Cairo"]),
    ("capital", "What is the capital of the Netherlands?", "Amsterdam", ["Berlin", "Paris", "Oslo"]),
    ("capital", "What is the capital of Kenya?", "Nairobi", ["Cairo", "Lisbon", "Athens"]),
    ("colour", "What colour is the sky on a clear day?", "blue", ["green", "red", "purple"]),
    ("colour", "What colour is fresh grass?", "green", ["blue", "red", "white"]),
    ("colour", "What colour is snow?", "white", ["black", "green", "red"]),
    ("colour", "What colour is a ripe banana?", "yellow", ["blue", "purple", "black"]),
    ("colour", "What colour is coal?", "black", ["white", "yellow", "pink"]),
    ("colour", "What colour is blood?", "red", ["green", "blue", "yellow"]),
    ("colour", "What colour is milk?", "white", ["black", "green", "red"]),
    ("colour", "What colour is a ripe tomato?", "red", ["blue", "white", "purple"]),
    ("colour", "What colour are most leaves in summer?", "green", ["red", "blue", "white"]),
    ("colour", "What colour is a carrot?", "orange", ["blue", "purple", "black"]),
    ("animal", "Which animal says moo?", "cow", ["dog", "cat", "duck"]),
    ("animal", "Which animal barks?", "dog", ["cow", "fish", "snake"]),
    ("animal", "Which animal meows?", "cat", ["dog", "horse", "cow"]),
    ("animal", "Which animal is called the king of the jungle?", "lion", ["mouse", "rabbit", "frog"]),
    ("animal", "What is the largest land animal?", "elephant", ["mouse", "cat", "rabbit"]),
    ("animal", "Which animal has a very long neck?", "giraffe", ["pig", "mouse", "frog"]),
    ("animal", "Which black and white bear eats bamboo?", "panda", ["lion", "shark", "eagle"]),
    ("animal", "Which insect makes honey?", "bee", ["ant", "spider", "fly"]),
    ("animal", "Which animal hops and carries its baby in a pouch?", "kangaroo", ["horse", "dog", "snake"]),
    ("animal", "How many legs does a spider have?", "8", ["2", "4", "6"]),
    ("animal", "How many legs does a dog have?", "4", ["2", "6", "8"]),
    ("animal", "Which bird cannot fly and lives in Antarctica?", "penguin", ["eagle", "parrot", "owl"]),
    ("animal", "What do bees make?", "honey", ["milk", "silk", "bread"]),
    ("animal", "Where do fish live?", "water", ["trees", "deserts", "caves"]),
    ("animal", "What is a baby cat called?", "kitten", ["puppy", "calf", "chick"]),
    ("animal", "What is a baby dog called?", "puppy", ["kitten", "calf", "foal"]),
    ("science", "Which planet do we live on?", "Earth", ["Mars", "Venus", "Jupiter"]),
    ("science", "Which star is closest to the Earth?", "the Sun", ["Sirius", "Polaris", "Vega"]),
    ("science", "Which gas do humans need to breathe to stay alive?", "oxygen", ["helium", "neon", "argon"]),
    ("science", "What is the largest ocean on Earth?", "Pacific", ["Indian", "Arctic", "Southern"]),
    ("science", "Which planet is known as the Red Planet?", "Mars", ["Venus", "Saturn", "Neptune"]),
    ("science", "What is the largest planet in our solar system?", "Jupiter", ["Mercury", "Mars", "Venus"]),
    ("science", "What is frozen water called?", "ice", ["steam", "sand", "glass"]),
    ("science", "At what temperature in Celsius does water boil?", "100", ["10", "50", "0"]),
    ("science", "Which organ pumps blood around the body?", "heart", ["lung", "liver", "brain"]),
    (
        "science",
        "What is the tallest mountain in the world?",
        "Mount Everest",
        ["Mount Fuji", "Ben Nevis", "Mont Blanc"],
    ),
    ("science", "What does the Moon orbit?", "the Earth", ["the Sun", "Mars", "Jupiter"]),
    ("science", "What do plants need from the sun to grow?", "light", ["sand", "salt", "metal"]),
    ("everyday", "How many days are in a week?", "7", ["5", "10", "12"]),
    ("everyday", "How many hours are in a day?", "24", ["12", "48", "60"]),
    ("everyday", "How many months are in a year?", "12", ["10", "7", "24"]),
    ("everyday", "What is the first month of the year?", "January", ["March", "June", "December"]),
    ("everyday", "Which day comes after Monday?", "Tuesday", ["Sunday", "Friday", "Thursday"]),
    ("everyday", "Which season comes after winter?", "spring", ["autumn", "summer", "winter"]),
    ("everyday", "Which meal is eaten in the morning?", "breakfast", ["dinner", "supper", "lunch"]),
    ("everyday", "What do you wear on your feet?", "shoes", ["hats", "gloves", "scarves"]),
    ("everyday", "What do you use to cut paper?", "scissors", ["a spoon", "a pillow", "a cup"]),
    ("everyday", "What is the opposite of hot?", "cold", ["warm", "big", "fast"]),
    ("everyday", "What is the opposite of up?", "down", ["left", "over", "high"]),
    ("everyday", "What is the opposite of big?", "small", ["tall", "heavy", "wide"]),
    ("everyday", "What is the opposite of day?", "night", ["morning", "noon", "week"]),
    ("everyday", "Which shape has three sides?", "triangle", ["square", "circle", "hexagon"]),
    ("everyday", "How many sides does a square have?", "4", ["3", "5", "6"]),
    ("everyday", "Where do people sleep at night?", "in a bed", ["in a sink", "in an oven", "in a fridge"]),
    ("everyday", "What do you drink when you are thirsty?", "water", ["sand", "paint", "oil"]),
    ("everyday", "What do you use to unlock a door?", "a key", ["a spoon", "a book", "a sock"]),
    ("everyday", "What do you need an umbrella for?", "rain", ["sunburn", "hunger", "noise"]),
    ("everyday", "Which utensil do you use to eat soup?", "a spoon", ["a knife", "a fork", "chopsticks"]),
]


def arithmetic(rng: random.Random) -> list[tuple[str, str, str, list[str]]]:
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
            items.append(("arithmetic", f"What is {a} {word} {b}?", str(value), [str(value + d) for d in wrong]))
    return items


def build(rng: random.Random) -> list[dict]:
    rows = []
    for category, question, answer, wrong in [*BANK, *arithmetic(rng)]:
        choices = [answer, *wrong]
        rng.shuffle(choices)
        rows.append(
            {
                "id": f"g{len(rows) + 1:03d}",
                "category": category,
                "question": question,
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
