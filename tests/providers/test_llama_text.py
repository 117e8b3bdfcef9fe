"""Token pieces into answer text: characters split across tokens, stop sequences split
across tokens, and nothing released that a stop sequence later takes back."""

from __future__ import annotations

from headend.providers.llama_text import AnswerText


def feed(text: AnswerText, pieces: list[bytes]) -> list[str]:
    return [text.add(piece) for piece in pieces]


def test_a_character_split_across_tokens_comes_out_whole() -> None:
    euro = "€".encode()
    text = AnswerText([])
    assert feed(text, [b"1 ", euro[:1], euro[1:2], euro[2:], b"!"]) == ["1 ", "", "", "€", "!"]
    assert text.finish() == ""


def test_a_stop_sequence_split_across_tokens_is_cut_and_nothing_after_it() -> None:
    text = AnswerText(["END"])
    released = feed(text, [b"Hello E", b"N", b"D and more"])
    assert "".join(released) == "Hello "
    assert released[0] == "Hello "  # "E" was held back: it could begin "END"
    assert text.stopped
    assert text.add(b"later") == ""


def test_held_text_is_released_when_it_turns_out_not_to_be_a_stop() -> None:
    text = AnswerText(["\n\nUser:"])
    released = feed(text, [b"a\n", b"\n", b"Us", b"ually"])
    assert "".join(released) == "a\n\nUsually"
    assert released[1] == ""
    assert not text.stopped


def test_what_is_held_at_the_end_is_released() -> None:
    text = AnswerText(["STOP"])
    assert text.add(b"go ST") == "go "
    assert text.finish() == "ST"
