"""The one error type users see: a single line naming the problem and what to do."""


class WhyboxError(ValueError):
    """A problem with the user's input or request, shown as one line (no traceback)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
