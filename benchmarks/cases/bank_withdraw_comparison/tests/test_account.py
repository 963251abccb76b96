import pytest

from bank.account import Account, InsufficientFunds
from bank.transfer import transfer


def test_deposit():
    account = Account("ada")
    account.deposit(50)
    assert account.balance == 50
    assert account.history == [("deposit", 50)]


def test_withdraw_part():
    account = Account("ada", 100)
    account.withdraw(30)
    assert account.balance == 70


def test_withdraw_everything():
    account = Account("ada", 100)
    account.withdraw(100)
    assert account.balance == 0


def test_overdraft_refused():
    with pytest.raises(InsufficientFunds):
        Account("ada", 10).withdraw(11)


def test_transfer_whole_balance():
    assert transfer(Account("ada", 25), Account("bob", 5), 25) == (0, 30)
