"""Linux unlock integration: lock-state backends over D-Bus (:mod:`.lockstate`), the
lock-screen watcher that unlocks on a recognised face (:mod:`.watcher`), failure
notifications (:mod:`.notify`), the root-run PAM helper ``faceunlock-auth``
(:mod:`.pam_helper`, with :mod:`.origin` telling local from remote requests), the system copy
of the template (:mod:`.system_copy`), the lid sensor (:mod:`.hardware`) and
``faceunlock system enable|disable|status`` (:mod:`.system`).

No Qt and no torch may be imported here (import-linter contract).
"""
