"""A tokenizer for arithmetic expressions such as '12 + (3*4)'."""


class Lexer:
    OPERATORS = "+-*/()"

    def __init__(self, text):
        self.text = text.replace(" ", "")
        self.pos = 0

    def peek(self):
        """The current character, or '' at the end of the input."""
        if self.pos > len(self.text):
            return ""
        return self.text[self.pos]

    def read_number(self):
        start = self.pos
        while self.peek().isdigit():
            self.pos += 1
        return int(self.text[start:self.pos])

    def tokens(self):
        """Numbers as ints, operators and parentheses as one-character strings."""
        result = []
        while self.peek():
            char = self.peek()
            if char.isdigit():
                result.append(self.read_number())
            elif char in self.OPERATORS:
                result.append(char)
                self.pos += 1
            else:
                raise ValueError(f"unexpected character {char!r} at {self.pos}")
        return result
