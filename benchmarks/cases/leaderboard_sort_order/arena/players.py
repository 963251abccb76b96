"""Players and their records."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Player:
    name: str
    wins: int
    losses: int

    @property
    def games(self):
        return self.wins + self.losses

    @property
    def win_rate(self):
        return self.wins / self.games if self.games else 0.0


def parse(lines):
    """Players from 'name, wins, losses' lines."""
    players = []
    for line in lines:
        name, wins, losses = line.split(",")
        players.append(Player(name.strip(), int(wins), int(losses)))
    return players
