from arena.players import Player, parse


def test_parse():
    assert parse(["ada, 3, 1", "bob,0,0"]) == [Player("ada", 3, 1), Player("bob", 0, 0)]


def test_win_rate():
    assert Player("ada", 3, 1).win_rate == 0.75
    assert Player("new", 0, 0).win_rate == 0.0
