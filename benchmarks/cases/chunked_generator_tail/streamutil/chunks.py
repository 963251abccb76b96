"""Lazy chunking of any iterable."""


def chunked(iterable, size):
    """Yield lists of `size` items; the last chunk may be shorter."""
    if size < 1:
        raise ValueError("size must be at least 1")
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
