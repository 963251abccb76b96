import pytest

from exprlex import Lexer


def test_spaces_removed():
    assert Lexer(" 1 + 2 ").text == "1+2"


def test_single_number():
    assert Lexer("42").tokens() == [42]


def test_expression():
    assert Lexer("12 + (3*4)").tokens() == [12, "+", "(", 3, "*", 4, ")"]


def test_unexpected_character():
    with pytest.raises(ValueError, match="unexpected character"):
        Lexer("1 $ 2").tokens()
