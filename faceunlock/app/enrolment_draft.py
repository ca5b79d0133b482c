"""The enrolment draft: what an enrolment front end (the wizard) has captured and chosen, held
in memory until Finish saves it in one step. No Qt here.

Nothing is written before :meth:`EnrolmentDraft.save`: the captures, the template built from
them and the chosen threshold live in this object. ``save`` writes the template once,
atomically, under the store's lock (re-reading it, so what another enrolment saved meanwhile
is kept), then the config keys the front end changed (one atomic write of the re-read config
file, and only when there are changes). :meth:`EnrolmentDraft.discard` forgets everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from faceunlock.app import service
from faceunlock.config import Config, config_set, load_config, save_config
from faceunlock.engine import calibration as cal
from faceunlock.engine.enrolment import Capture
from faceunlock.engine.pipeline import FacePipeline
from faceunlock.engine.templates import Anchor, Template, TemplateStore


class EnrolmentDraft:
    """An enrolment of ``user`` into ``store`` (adding the appearance ``label`` to the
    existing template, or with ``replace`` starting a new one), not yet saved.

    cfg: the configuration the enrolment runs with (its ``auth.security_level`` is the new
    template's level before calibration); config_path: the config file :meth:`save` writes
    the changed keys to (default: the user's)."""

    def __init__(
        self,
        store: TemplateStore,
        user: str,
        cfg: Config,
        *,
        label: str = "default",
        replace: bool = False,
        config_path: str | Path | None = None,
    ) -> None:
        self.store = store
        self.user = user
        self.cfg = cfg
        self.label = label
        self.replace = replace
        self.config_path = config_path
        self.captures: list[Capture] = []
        self.template: Template | None = None
        self.new_anchors: list[Anchor] = []
        self.choice: cal.ThresholdChoice | None = None
        self.saved_path: Path | None = None

    def adding(self) -> bool:
        """True when the draft adds an appearance to the owner's existing template."""
        return self.store.exists(self.user) and not self.replace

    def set_captures(self, captures: Iterable[Capture]) -> None:
        """The anchors of a completed capture (the template and choice built from earlier
        ones are dropped)."""
        self.captures = list(captures)
        self.template = None
        self.new_anchors = []
        self.choice = None

    def has_captures(self) -> bool:
        return bool(self.captures)

    def discard(self) -> None:
        """Forget the captures, the template and the choice (nothing was written)."""
        self.set_captures([])

    def build_template(self, pipe: FacePipeline) -> Template:
        """The template to save: the existing one plus the new anchors (unless replace).
        Adding re-checks that every new anchor matches the owner (NotOwnerError)."""
        if not self.captures:
            raise RuntimeError("nothing captured yet")
        sha = pipe.encoder.sha256
        if self.adding():
            t = self.store.load(self.user, expected_model_sha256=sha)
            # the capture checked each anchor already; this refuses a template changed since
            service.check_appearance(t, pipe, np.stack([c.embedding for c in self.captures]))
        else:
            t = Template(
                user=self.user, model_sha256=sha, security_level=self.cfg.auth.security_level
            )
        self.new_anchors = [
            Anchor.new(
                c.embedding,
                c.thumbnail,
                label=self.label,
                quality={**c.quality, "pose_" + c.pose: 1.0},
            )
            for c in self.captures
        ]
        t.add_anchors(self.new_anchors)
        self.template = t
        return t

    def choose(self, choice: cal.ThresholdChoice | None) -> None:
        """The security level and threshold picked for the template."""
        self.choice = choice

    def complete(self) -> bool:
        return self.template is not None and self.choice is not None

    def save(self, config_changes: Mapping[str, str] | None = None) -> Path:
        """Finish: write the template (atomically, under the store's lock), then
        ``config_changes`` (``{"watcher.enabled": "true", ...}``) to the config file in one
        atomic write. Returns the template's path. Raises RuntimeError before anything is
        written when the draft is not complete."""
        t, ch = self.template, self.choice
        if t is None or ch is None:
            raise RuntimeError("nothing to save: the enrolment is not complete")
        new = list(self.new_anchors)

        def add(current: Template | None) -> Template:
            # re-read under the store's lock: what another enrolment saved meanwhile is kept
            target = t
            if current is not None:
                target = current
                known = {a.id for a in current.anchors}
                target.add_anchors(a for a in new if a.id not in known)
            target.threshold = ch.threshold
            target.security_level = ch.level
            target.calibration = ch.to_json()
            return target

        self.template = self.store.update(
            self.user, add, expected_model_sha256=t.model_sha256, replace=self.replace
        )
        self.saved_path = self.store.path(self.user)
        if config_changes:
            self.write_config(config_changes)
        return self.saved_path

    def write_config(self, changes: Mapping[str, str]) -> None:
        """Set ``changes`` in the config file (re-read first, so only those keys change; one
        atomic write) and in :attr:`cfg`."""
        on_disk = load_config(self.config_path)
        for key, value in changes.items():
            on_disk = config_set(on_disk, key, value)
        save_config(on_disk, self.config_path)
        for key, value in changes.items():
            self.cfg = config_set(self.cfg, key, value)
