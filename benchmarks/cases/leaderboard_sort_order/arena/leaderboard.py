"""Ranking players."""


def rank(players):
    """Best first: highest win rate, then most wins, then name alphabetically."""
    return sorted(players, key=lambda p: (p.win_rate, p.wins, p.name))


def top(players, n=3):
    """Names of the `n` best players."""
    return [player.name for player in rank(players)[:n]]
