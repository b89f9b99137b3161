"""The lab's one error: something it needs is missing or failed; the message says what and how to fix it."""


class LabError(RuntimeError):
    pass
