from .bsearch import contains, index_of

__all__ = ["contains", "index_of"]
