from arena.leaderboard import top
from arena.players import parse

PLAYERS = parse(["cid, 2, 8", "ada, 9, 1", "eve, 5, 5", "bob, 7, 3", "dan, 0, 0"])


def test_top_three():
    assert top(PLAYERS) == ["ada", "bob", "eve"]


def test_ties_broken_by_wins_then_name():
    players = parse(["bob, 3, 1", "cid, 6, 2", "amy, 3, 1"])
    assert top(players) == ["cid", "amy", "bob"]
