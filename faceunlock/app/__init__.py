"""Application services between the engine and the front ends (CLI, UI, unlock, evaluation):
what knows the config, the template store, the state directories and the current user
(:mod:`.service`), the enrolment draft of the wizard, the user's text editor. No Qt, no torch.
"""
