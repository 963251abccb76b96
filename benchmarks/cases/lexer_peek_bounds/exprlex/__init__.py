from .lexer import Lexer

__all__ = ["Lexer"]
