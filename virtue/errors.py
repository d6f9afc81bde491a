"""The one error type that reaches users (a one-line message, exit code 2), and the stops a run resumes from."""

import os


class UserError(Exception):
    """Bad input from the user (a file, a row, a key). The CLI prints it on one line and exits with 2."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


class Interrupted(Exception):
    """A run stopped on a signal after saving a checkpoint: it resumes when started again, it did not fail
    (a tracked run closes KILLED, virtue.tracker.tracked_run)."""


class TrainingInterrupted(Interrupted):
    """A stop signal arrived; a checkpoint was saved at the step boundary and training returned."""

    def __init__(self, checkpoint: os.PathLike, signum: int):
        super().__init__(f"stopped by signal {signum}; checkpoint {checkpoint}; run again to resume")
        self.checkpoint, self.signum = checkpoint, signum
