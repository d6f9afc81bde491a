"""Time limits of the tests, in one place. A limit guards against a hang; it never decides a verdict. Each is
many times what the work takes on 2 quiet cores, so the suite holds with twice that load (CI machines are
shared: a Slurm job of 10 s has been seen to outlive a 2-minute limit at load 2-3)."""

JOB_TIME_MIN = 20  # Slurm / submitit job limit of test jobs (each takes seconds to a minute when quiet)
WAIT_S = 600  # waiting for a job, a file or a thread to appear or end (seconds to a minute when quiet)
