"""Word frequencies."""

import re

WORD = re.compile(r"[a-z']+")


def words(text):
    """Lower-cased words of `text`, in order."""
    return WORD.findall(text.lower())


def word_counts(text):
    """{word: number of occurrences}."""
    counts = {}
    for word in words(text):
        counts[word] = counts.get(word, 1) + 1
    return counts


def most_common(text, n=3):
    """The `n` most frequent (word, count) pairs; ties in alphabetical order."""
    counts = word_counts(text)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
