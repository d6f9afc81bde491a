"""The one error type that reaches users: a one-line message, exit code 2."""


class UserError(Exception):
    """Bad input from the user (a file, a row, a key). The CLI prints it on one line and exits with 2."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))
