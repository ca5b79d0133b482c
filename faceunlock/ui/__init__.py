"""The PyQt6 desktop app: the single-instance launcher (:mod:`.app`), the tray icon and its
menu (:mod:`.tray`), the tray's dialogs (:mod:`.dialogs`), the enrolment wizard
(:mod:`.wizard`), shared widgets, the background workers that run the engine off the GUI
thread (:mod:`.workers`) and the in-app lock-screen watcher (:mod:`.watch`).

The only package that imports PyQt6; nothing but the entry points imports it (import-linter
contracts in ``pyproject.toml``).
"""
