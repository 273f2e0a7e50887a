"""Jobs: the dashboard's explanations computed away from Streamlit's script thread.

`executor().submit(JobSpec(...))` queues an explanation and returns its `Job` handle:
queue position, progress, result, cancel. The spec names the model and data by content
(`Source`), so the executor rebuilds them where the job runs. No streamlit here.
"""

from whybox.dashboard.jobs.executor import Executor, Job, JobCancelled, JobError, executor
from whybox.dashboard.jobs.spec import JobSpec, Source

__all__ = ["Executor", "Job", "JobCancelled", "JobError", "JobSpec", "Source", "executor"]
