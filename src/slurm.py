"""Slurm jobs (conf/hydra/launcher/slurm.yaml, hydra-submitit-launcher) whose states are read from
squeue instead of sacct.

submitit asks sacct for the state of its jobs, and sacct needs Slurm's accounting database
(slurmdbd). On a cluster without one every poll prints "Slurm accounting storage is disabled" and
three lines of "Bypassing sacct error". squeue needs nothing and lists a job, with `--states=all`,
until a few minutes after it ended; whether a job finished is decided, as always, by the result
file it writes. Nothing else changes: submission, arrays, requeue on timeout or preemption.
"""
from submitit.slurm import slurm


class SqueueWatcher(slurm.SlurmInfoWatcher):
    """Job states from `squeue --states=all`, in the shape sacct gives them."""

    def _make_command(self):
        if not self._registered - self._finished:
            return None
        return ["squeue", "--noheader", "--states=all", "--format=%i|%T|%N"]

    def read_info(self, string):
        text = string.decode() if isinstance(string, bytes) else string
        return super().read_info("JobID|State|NodeList\n" + text)


def poll_with_squeue() -> None:
    """Every Slurm job of this process (submitit keeps one watcher for all of them) is polled
    with squeue: called by src.run, the process that launches and waits for the jobs."""
    slurm.SlurmJob.watcher = SqueueWatcher(delay_s=600)
