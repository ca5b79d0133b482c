"""Linux unlock integration: lock-state watchers, unlock actions, the PAM helper, the system
copy and system-wide PAM setup.

No Qt and no torch may be imported here (import-linter contract).
"""
