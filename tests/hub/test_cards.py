"""README front matter, parsed in one place for the registry and the pages."""

from __future__ import annotations

from hub.cards import CardInput, card_fields, split_front_matter
from web.markdown import render_card


def test_front_matter_is_split_from_the_body():
    front, body = split_front_matter("---\nlicense: MIT\ntags: [qa]\n---\n# Title\n")
    assert front == {"license": "MIT", "tags": ["qa"]}
    assert body == "# Title\n"


def test_no_or_unclosed_front_matter_leaves_the_text_alone():
    for text in ("# Title\n---\nx: 1\n---\n", "---\nlicense: mit\n# never closed\n", ""):
        assert split_front_matter(text) == ({}, text)


def test_front_matter_that_is_not_a_mapping_is_ignored_but_still_not_rendered():
    for yaml_text in ("- a\n- b\n", "key: [unclosed\n"):
        front, body = split_front_matter(f"---\n{yaml_text}---\nbody\n")
        assert (front, body) == ({}, "body\n")


def test_the_page_drops_the_same_block_the_registry_reads():
    text = "---\nlicense: mit\n---\nHello **card**\n"
    assert "license" not in render_card(text)
    assert "<strong>card</strong>" in render_card(text)


def test_metadata_wins_and_front_matter_fills_the_rest():
    readme = "---\nlicense: MIT\ndatasets: acme/faq\ntags: [Chat, 'a:b']\n---\n"
    assert card_fields(CardInput(), readme) == card_fields(CardInput(license="mit"), readme)
    fields = card_fields(CardInput(task_tags=["qa"]), readme)
    assert (fields.license, fields.datasets, fields.task_tags) == ("mit", ["acme/faq"], ["qa"])
    assert card_fields(CardInput(), readme).task_tags == ["chat"]
