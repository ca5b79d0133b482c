"""Shared test material and stand-ins (D-Bus screen lockers, logind, a notification daemon,
the webcam clips, presentation attacks, malformed images), imported as ``tests.fakes.<name>``."""
