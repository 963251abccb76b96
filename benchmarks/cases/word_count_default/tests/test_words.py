from textstats.words import most_common, word_counts, words

TEXT = "The cat and the hat. The cat sat!"


def test_words():
    assert words("It's a Cat.") == ["it's", "a", "cat"]


def test_word_counts():
    assert word_counts(TEXT) == {"the": 3, "cat": 2, "and": 1, "hat": 1, "sat": 1}


def test_most_common_order():
    assert [word for word, _ in most_common(TEXT)] == ["the", "cat", "and"]


def test_most_common_counts():
    assert most_common(TEXT, n=2) == [("the", 3), ("cat", 2)]
