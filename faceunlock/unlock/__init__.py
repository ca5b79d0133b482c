"""Linux unlock integration (lock-state watchers, unlock actions, PAM helper): not yet built.

No Qt and no torch may be imported here (import-linter contract).
"""
