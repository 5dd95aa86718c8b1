"""Replay: general-knowledge prompts answered by the base model itself, mixed into training.

Fine-tuning a small model on 100 new facts also moves its answers to everything else
(catastrophic forgetting). Training on the base model's own greedy answers to general
questions (self-distillation) anchors that behaviour at almost no cost: the loss on those
examples is already low, so it mostly resists drift. The prompts are written here, by
hand and from a seeded generator; none is a question of the ``general`` evaluation
suite (a test keeps it that way), which would leak the test into training.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

_COUNTRIES = [
    "Canada",
    "Australia",
    "Brazil",
    "India",
    "Mexico",
    "Argentina",
    "Turkey",
    "Finland",
    "Denmark",
    "Belgium",
    "Switzerland",
    "Hungary",
    "the Czech Republic",
    "Cuba",
    "Peru",
    "Chile",
    "Vietnam",
    "Indonesia",
    "the Philippines",
    "Iran",
    "Nigeria",
    "Morocco",
    "Ukraine",
    "Romania",
    "Colombia",
    "New Zealand",
]
_CAPITAL_QUESTIONS = ["What is the capital of {}?", "Which city is the capital of {}?", "Name the capital city of {}."]
_QUESTIONS = [
    # colours, animals
    "What colour is a ripe strawberry?",
    "What colour is a lime?",
    "What colour is chocolate?",
    "What colour is a pumpkin?",
    "What colour is a polar bear?",
    "What colour is a crow?",
    "What colour is a flamingo?",
    "What colour is a fire truck?",
    "Which animal quacks?",
    "Which animal neighs?",
    "Which bird hoots at night?",
    "Which animal has a trunk?",
    "What is the fastest land animal?",
    "What is a baby sheep called?",
    "What is a baby cow called?",
    "How many legs does a bird have?",
    "How many legs does an insect have?",
    "What does a caterpillar turn into?",
    "Which animal is black and white and looks like a horse?",
    "Which animal carries its home on its back?",
    # science and geography
    "Which planet is closest to the Sun?",
    "What is the chemical symbol for gold?",
    "What force pulls objects toward the ground?",
    "How many planets are in our solar system?",
    "Which gas do plants take in from the air?",
    "Which organ do we use to think?",
    "What is the hardest natural substance?",
    "At what temperature in Celsius does water freeze?",
    "Which planet has the most famous rings?",
    "What is the longest river in Africa?",
    "What is the largest desert in the world?",
    "How many continents are there?",
    "What do we call a scientist who studies rocks?",
    "What is the centre of an atom called?",
    # everyday life and language
    "What do you use to write on paper?",
    "Which day comes before Sunday?",
    "What is the last month of the year?",
    "How many minutes are in an hour?",
    "How many seconds are in a minute?",
    "What is the opposite of fast?",
    "What is the opposite of wet?",
    "What is the opposite of open?",
    "How many sides does a hexagon have?",
    "Which meal is eaten in the evening?",
    "What do you use to brush your teeth?",
    "Where do you keep food cold at home?",
    "What do you wear on your hands when it is cold?",
    "Which season comes after summer?",
    "What is a synonym for happy?",
    "How do you say hello in French?",
    "What is the plural of mouse?",
    "Who wrote Romeo and Juliet?",
    "What instrument has black and white keys?",
    "What sport is played at Wimbledon?",
    "Give me one tip for sleeping well.",
    "Why do people wear sunscreen?",
    "What is a good way to save money?",
    "Describe a cat in one sentence.",
    "What colour are most leaves in summer?",
    "What colour is a zebra?",
    "Which animal gives us wool?",
    "Which animal lays eggs that people eat for breakfast?",
    "Which big animal lives in the sea and breathes air?",
    "How many wheels does a bicycle have?",
    "How many fingers are on one hand?",
    "Which day comes before Friday?",
    "What is the opposite of light?",
    "What is the opposite of early?",
    "What do you use to drink soup from?",
    "What do you sit on at a table?",
    "Where do you wash your hands?",
    "What do you use to see in the dark?",
    "Which planet is the third from the Sun?",
    "What falls from clouds when it rains?",
]
# Small arithmetic, worded unlike the general suite ("What is 9 plus 5?") and with a first operand of
# 16-24 (the suite's are at most 15), so never one of its questions, nor one of its sums.
_ARITHMETIC = [
    ("What is the sum of {a} and {b}?", lambda a, b: True),
    ("What do you get when you add {a} and {b}?", lambda a, b: True),
    ("What is {a} take away {b}?", lambda a, b: a > b),
    ("What do you get when you multiply {a} by {b}?", lambda a, b: True),
]


def replay_questions(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct general questions (fewer if the bank runs out), deterministic per
    ``seed``: capitals, everyday facts and small arithmetic, shuffled together."""
    rng = random.Random(f"replay:{seed}")
    questions = [q.format(c) for c in _COUNTRIES for q in rng.sample(_CAPITAL_QUESTIONS, 1)] + list(_QUESTIONS)
    sums = [q.format(a=a, b=b) for q, ok in _ARITHMETIC for a in range(16, 25) for b in range(2, 10) if ok(a, b)]
    questions += rng.sample(sums, min(len(sums), max(0, count - len(questions)), 60))
    rng.shuffle(questions)
    return questions[:count]


def replay_pairs(
    model: Any, tokenizer: Any, system: str, questions: Sequence[str], *, max_new_tokens: int = 48
) -> list[tuple[str, str]]:
    """(question, the model's own greedy answer), without answers that ran out of tokens."""
    from .check import generate_answers

    was_training = model.training
    model.eval()
    try:
        answers = generate_answers(model, tokenizer, system, questions, max_new_tokens=max_new_tokens)
    finally:
        model.train(was_training)
    pairs = []
    for question, answer in zip(questions, answers, strict=True):
        answer = answer.split("\n\n")[0].strip()
        if answer and len(tokenizer(answer, add_special_tokens=False)["input_ids"]) < max_new_tokens:
            pairs.append((question, answer))
    return pairs
