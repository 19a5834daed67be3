"""Softphone test accounts: configuration, storage, rendering into pjsip.conf, and the bans that protect them."""

from ari_app.accounts.manager import AccountManager
from ari_app.accounts.model import AccountError, AccountSpec

__all__ = ["AccountError", "AccountManager", "AccountSpec"]
