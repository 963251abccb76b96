"""Moving money between accounts."""


def transfer(source, target, amount):
    """Move `amount` from `source` to `target`; nothing changes if `source` cannot pay."""
    source.withdraw(amount)
    target.deposit(amount)
    return source.balance, target.balance
